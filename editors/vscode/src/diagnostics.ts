/**
 * Every diagnostic under the cursor goes to k2lsp: VS Code hands a code action provider the
 * diagnostics of the range, and this adds any other diagnostic (every source, every owner)
 * touching the same lines, so "K2: Fix …" is offered for all of them. vscode-free (tested in
 * test/core.test.mjs).
 */

export interface LineRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

export interface DiagnosticLike {
  range: LineRange;
  message: string;
  source?: string;
}

function key(d: DiagnosticLike): string {
  return `${d.range.start.line}:${d.range.start.character}:${d.source ?? ""}:${d.message}`;
}

/** `own` plus every diagnostic of `all` touching the lines of `range`, each once, own first. */
export function mergeDiagnostics<T extends DiagnosticLike>(own: readonly T[], all: readonly T[], range: LineRange): T[] {
  const seen = new Set(own.map(key));
  const out = [...own];
  for (const d of all) {
    if (d.range.start.line > range.end.line || d.range.end.line < range.start.line) continue;
    const k = key(d);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(d);
  }
  return out;
}
