/** Names and payloads of the k2lsp server (mirror of k2lsp/server/protocol.py). */

import type { K2TypedEvent } from "./events";

export const CMD = {
  ask: "k2lsp.ask",
  task: "k2lsp.task",
  fixDiagnostic: "k2lsp.fixDiagnostic",
  explain: "k2lsp.explain",
  refactor: "k2lsp.refactor",
  refactorRepository: "k2lsp.refactorRepository",
  writeTests: "k2lsp.writeTests",
  fixFailingTest: "k2lsp.fixFailingTest",
  cancel: "k2lsp.cancel",
  undo: "k2lsp.undo",
  status: "k2lsp.status",
  accept: "k2lsp.accept",
  reject: "k2lsp.reject",
  trust: "k2lsp.trust",
  checkSetup: "k2lsp.checkSetup",
  applyPatch: "k2lsp.applyPatch",
  takeCandidate: "k2lsp.takeCandidate",
} as const;

export const STREAM_NOTIFICATION = "k2lsp/stream";
export const DELIVERY_NOTIFICATION = "k2lsp/delivery";
export const UNTRUSTED_NOTIFICATION = "k2lsp/untrusted";
export const REVIEW_NOTIFICATION = "k2lsp/review";

/** One hunk of `k2lsp/review`: lines start.. (0-based, when the review started) holding
 * oldLines become newLines. */
export interface ReviewHunk {
  id: number;
  start: number;
  oldLines: string[];
  newLines: string[];
  state: string; // pending | conflict
}

/** One file of `k2lsp/review`; created/deleted/renamed files are one whole-file hunk. */
export interface ReviewFile {
  path: string;
  uri: string;
  kind: "modified" | "created" | "deleted" | "renamed";
  version: number | null;
  hunks: ReviewHunk[];
  group?: string; // e.g. a refactor job's "batch 2: …"
}

/** `k2lsp/review`: a run's proposal waiting for a decision per hunk. */
export interface ReviewParams {
  runId: string;
  title: string;
  files: ReviewFile[];
}

/** Answer of k2lsp.accept / k2lsp.reject during a review. */
export interface ReviewAnswer {
  runId: string;
  accepted: number[];
  rejected: number[];
  conflicts: { id: number; reason: string }[];
  pending: number[];
}

/** `k2lsp/untrusted`: repository settings the server ignores until the repository is trusted. */
export interface UntrustedParams {
  root: string;
  keys: string[];
  configHash: string;
  message: string;
  editorDecides: boolean;
}
export const FIX_FAILING_TEST_TITLE = "Fix failing test";

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

/** One event: `Event.to_dict()` of k2lsp.agent.events, flat; the types are generated from
 * the Python event classes into ./events.d.ts (`k2lsp events-schema --write .`). */
export type K2Event = K2TypedEvent;

export interface StreamParams {
  runId: string;
  events: K2Event[];
}

export interface DeliveryParams {
  runId: string;
  status: string;
  paths?: string[];
  message?: string;
  patchPath?: string;
  diffUri?: string;
}

export interface RunStarted {
  runId: string;
  transcriptUri: string;
  /** the conversation the run is a turn of: pass it back to continue it (ask / task) */
  conversationId?: string;
}

export interface CancelResult {
  cancelled: string[];
}

export interface UndoResult {
  runId: string;
  restored: string[];
}

/** Build the single argument object of a text command (ask/task/explain/refactor). */
export function textArgs(
  uri: string | undefined,
  range: Range | undefined,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const args: Record<string, unknown> = { ...extra };
  if (uri) args.uri = uri;
  if (range && !(range.start.line === range.end.line && range.start.character === range.end.character)) {
    args.range = range;
  }
  return args;
}

/** Build the argument of k2lsp.cancel / undo / accept / reject. */
export function runIdArgs(runId?: string): Record<string, unknown> {
  return runId ? { runId } : {};
}
