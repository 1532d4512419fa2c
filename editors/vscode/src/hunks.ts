/** Hunks of a review as the buffer moves under them (vscode-free, unit-tested in core.test). */

import type { ReviewHunk } from "./protocol";

/** A pending hunk where it is now: lines `start`..`start + oldLines.length` of the document. */
export interface PlacedHunk extends ReviewHunk {
  runId: string;
  uri: string;
}

/**
 * Move hunks after a document change that replaced lines `from`..`to` (inclusive, 0-based) by
 * `added` lines: hunks below shift; a hunk the change touches keeps its place (the server
 * checks its lines when it is accepted, and reports a conflict if they changed).
 */
export function shiftHunks(hunks: PlacedHunk[], from: number, to: number, added: number): void {
  const delta = added - (to - from + 1);
  if (delta === 0) return;
  for (const h of hunks) {
    if (h.start > to) h.start += delta;
  }
}

/** `text` with every hunk in `hunks` applied at its current place (the proposal). */
export function applyHunks(text: string, hunks: PlacedHunk[]): string {
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const lines = text.split(/\r?\n/);
  for (const h of [...hunks].sort((a, b) => b.start - a.start)) {
    lines.splice(h.start, h.oldLines.length, ...h.newLines);
  }
  return lines.join(eol);
}
