/** "K2: Check setup": the server's `k2lsp.checkSetup` result as Output lines and one message. vscode-free. */

export interface SetupCheck {
  name: string;
  status: string; // ok | warn | FAIL
  detail: string;
  fix: string;
}

export interface SetupResult {
  ok: boolean;
  checks: SetupCheck[];
  problems: string[];
}

/** One Output line per check: `[ok] model: …` and an indented fix for the others. */
export function setupLines(result: SetupResult): string[] {
  const lines: string[] = [];
  for (const c of result.checks) {
    lines.push(`[${c.status}] ${c.name}: ${c.detail}`);
    if (c.status !== "ok" && c.fix) lines.push(`       fix: ${c.fix}`);
  }
  return lines;
}

/** The notification: every problem in one line each, or that all checks passed. */
export function setupMessage(result: SetupResult): { level: "info" | "warning" | "error"; text: string } {
  if (!result.problems.length) return { level: "info", text: `K2 setup: all ${result.checks.length} checks passed.` };
  return { level: result.ok ? "warning" : "error", text: `K2 setup: ${result.problems.join(" | ")}` };
}

/** A failed request's message as the user reads it (the server already says "K2: …"). */
export function requestError(command: string, message: string): string {
  return message.startsWith("K2") ? message : `K2: ${command} failed: ${message}`;
}
