/** Turns k2lsp/stream events into text for the "K2" Output channel (pure, no vscode). */

import type { K2Event } from "./protocol";

export const REASONING_PREFIX = "  ┆ ";
const MAX_INLINE = 160;

function oneLine(value: unknown): string {
  const text = (typeof value === "string" ? value : JSON.stringify(value ?? {})).replace(/\s*\n\s*/g, " ");
  return text.length > MAX_INLINE ? `${text.slice(0, MAX_INLINE)}…` : text;
}

/**
 * Stateful renderer: reasoning lines are indented behind "┆" (visibly distinct from answers),
 * each tool call and result is one line, and every run opens with a header line.
 * `render` returns the text to append (it may end mid-line while a delta streams).
 */
export class StreamRenderer {
  private kind: "reasoning" | "content" | undefined;
  private run: string | undefined;
  private atLineStart = true;

  /** Text to append for one event ("" for events shown only in the status bar). */
  render(ev: K2Event): string {
    const runChanged = this.run !== undefined && this.run !== ev.run_id;
    if (ev.type === "reasoning" || ev.type === "content") {
      return this.stream(ev.type, String(ev.text ?? ""), runChanged, ev.run_id);
    }
    const line = this.line(ev);
    if (line === undefined) return "";
    const out = this.closeLine() + line + "\n";
    this.kind = undefined;
    this.run = ev.run_id;
    this.atLineStart = true;
    return out;
  }

  /** Text to append for a line of our own (e.g. a delivery note), after any open line. */
  note(text: string): string {
    const out = this.closeLine() + text + "\n";
    this.kind = undefined;
    this.atLineStart = true;
    return out;
  }

  private closeLine(): string {
    return this.atLineStart ? "" : "\n";
  }

  private stream(kind: "reasoning" | "content", text: string, runChanged: boolean, runId: string): string {
    const prefix = kind === "reasoning" ? REASONING_PREFIX : "";
    let out = "";
    if (this.kind !== kind || runChanged) {
      out += this.closeLine();
      this.atLineStart = true;
    }
    this.kind = kind;
    this.run = runId;
    for (const ch of text.split(/(\n)/)) {
      if (ch === "") continue;
      if (ch === "\n") {
        out += "\n";
        this.atLineStart = true;
        continue;
      }
      if (this.atLineStart) out += prefix;
      out += ch;
      this.atLineStart = false;
    }
    return out;
  }

  private line(ev: K2Event): string | undefined {
    switch (ev.type) {
      case "run_started":
        return `\n━━ K2 ${ev.mode ?? "run"} · ${ev.run_id} · ${oneLine(ev.task ?? "")} ━━`;
      case "tool_call":
        return `→ ${ev.name} ${oneLine(ev.args)}`;
      case "tool_result":
        return `← ${ev.name} ${ev.ok ? "ok" : "error"}: ${oneLine(ev.summary ?? "")}`;
      case "edit":
        return `✎ ${ev.path}`;
      case "test_result": {
        const bad = Number(ev.failed ?? 0) + Number(ev.errors ?? 0);
        return `${bad === 0 ? "✓" : "✗"} tests: ${ev.passed ?? 0} passed, ${ev.failed ?? 0} failed, ${ev.errors ?? 0} errors`;
      }
      case "run_finished": {
        const summary = ev.summary ? `\n${String(ev.summary)}` : "";
        return `━━ finished: ${ev.outcome} (exit ${ev.exit_code})${summary}`;
      }
      default:
        return undefined;
    }
  }
}
