/** The chat's vscode-free core: the transcript model fed by k2lsp/stream events, the context
 * items of a message (chips and `#file:` tags) and the transcript's HTML (reasoning and diffs
 * folded in <details>). Unit-tested in test/chat.test.mjs. */

import type { K2Event } from "./protocol";

export type Entry =
  | { kind: "user"; text: string; chips: string[] }
  | { kind: "header"; runId: string; mode: string }
  | { kind: "reasoning"; text: string }
  | { kind: "answer"; text: string }
  | { kind: "tool"; id: string; name: string; args: string; ok?: boolean; summary?: string }
  | { kind: "diff"; path: string; diff: string }
  | { kind: "tests"; text: string }
  | { kind: "end"; outcome: string; tokens: number; costUsd: number; summary: string }
  | { kind: "note"; text: string };

/** A context item as k2lsp.ask / k2lsp.task take it (k2lsp/agent/context_items.py). */
export type ContextItem = Record<string, unknown> & { kind: "file" | "buffer" | "selection" | "diagnostics" };

export interface Chips {
  file: boolean;
  selection: boolean;
  diagnostics: boolean;
}

/** What the editor knows about the file the chips refer to. */
export interface EditorState {
  uri: string;
  text: string;
  version: number;
  selection?: { startLine: number; endLine: number; text: string };
  diagnostics: { line: number; message: string; severity: string; source?: string; code?: string }[];
}

function oneLine(value: unknown, max = 160): string {
  const text = (typeof value === "string" ? value : JSON.stringify(value ?? {})).replace(/\s*\n\s*/g, " ");
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** The transcript of one chat and the conversation it continues. */
export class ChatModel {
  entries: Entry[] = [];
  conversationId: string | undefined;
  /** a message was sent and its run id is not known yet */
  waiting = false;
  private readonly runs = new Map<string, { tokens: number; cost: number }>();
  private early = new Map<string, K2Event[]>();

  /** Record a message the user sent. */
  addUser(text: string, chips: string[]): void {
    this.entries.push({ kind: "user", text, chips });
    this.waiting = true;
  }

  /** Does the chat own (or hold until its run id is known) this event? */
  onEvent(ev: K2Event): boolean {
    if (this.runs.has(ev.run_id)) {
      this.apply(ev);
      return true;
    }
    if (this.waiting) {
      const held = this.early.get(ev.run_id) ?? [];
      held.push(ev);
      this.early.set(ev.run_id, held);
      return true;
    }
    return false;
  }

  /** The sent message started `runId` (undefined: it did not start, `error` says why); returns
   * the held events of other runs, for the Output channel. */
  adopt(runId: string | undefined, conversationId?: string, error?: string): K2Event[] {
    this.waiting = false;
    if (conversationId) this.conversationId = conversationId;
    if (error) this.entries.push({ kind: "note", text: `not sent: ${error}` });
    if (runId) this.runs.set(runId, { tokens: 0, cost: 0 });
    const others: K2Event[] = [];
    for (const [id, events] of this.early) {
      for (const ev of events) {
        if (id === runId) this.apply(ev);
        else others.push(ev);
      }
    }
    this.early = new Map();
    return others;
  }

  /** Is any run of this chat still going? */
  busy(): boolean {
    return this.waiting || [...this.runs.keys()].some((id) => !this.finished.has(id));
  }

  private readonly finished = new Set<string>();

  private stream(kind: "reasoning" | "answer", text: string): void {
    const last = this.entries[this.entries.length - 1];
    if (last && last.kind === kind) last.text += text;
    else this.entries.push({ kind, text });
  }

  /** Fold one event of a chat run into the transcript. */
  apply(ev: K2Event): void {
    const run = this.runs.get(ev.run_id) ?? { tokens: 0, cost: 0 };
    switch (ev.type) {
      case "run_started":
        this.entries.push({ kind: "header", runId: ev.run_id, mode: ev.mode });
        if (ev.conversation) this.conversationId = ev.conversation;
        break;
      case "reasoning":
        this.stream("reasoning", ev.text);
        break;
      case "content":
        this.stream("answer", ev.text);
        break;
      case "tool_call":
        this.entries.push({ kind: "tool", id: ev.id, name: ev.name, args: oneLine(ev.args) });
        break;
      case "tool_result": {
        const call = [...this.entries].reverse().find((e) => e.kind === "tool" && e.id === ev.id);
        if (call && call.kind === "tool") {
          call.ok = ev.ok;
          call.summary = oneLine(ev.summary);
        }
        break;
      }
      case "edit":
        this.entries.push({ kind: "diff", path: ev.path, diff: ev.diff });
        break;
      case "test_result":
        this.entries.push({ kind: "tests", text: `tests: ${ev.passed} passed, ${ev.failed} failed, ${ev.errors} errors` });
        break;
      case "usage":
        run.tokens = ev.total_prompt_tokens + ev.total_completion_tokens;
        run.cost = ev.total_cost_usd;
        break;
      case "run_finished":
        this.finished.add(ev.run_id);
        this.entries.push({ kind: "end", outcome: ev.outcome, tokens: run.tokens, costUsd: run.cost, summary: ev.summary });
        break;
      default:
        break;
    }
    this.runs.set(ev.run_id, run);
  }
}

/** `#file:path` tags of a message: the paths, and the text with each tag as `path`. */
export function parseFileTags(text: string): { text: string; paths: string[] } {
  const paths: string[] = [];
  const clean = text.replace(/#file:(\S+)/g, (_m, p: string) => {
    paths.push(p);
    return `\`${p}\``;
  });
  return { text: clean.trim(), paths };
}

/** The context items of a message: its `#file:` tags and the chips that are on. */
export function contextItems(paths: string[], chips: Chips, editor: EditorState | undefined): ContextItem[] {
  const items: ContextItem[] = paths.map((p) => ({ kind: "file", path: p }));
  if (!editor) return items;
  if (chips.file) items.push({ kind: "buffer", uri: editor.uri, text: editor.text, version: editor.version });
  if (chips.selection && editor.selection) {
    items.push({ kind: "selection", uri: editor.uri, ...editor.selection });
  }
  if (chips.diagnostics) items.push({ kind: "diagnostics", uri: editor.uri, items: editor.diagnostics });
  return items;
}

/** The argument of k2lsp.ask / k2lsp.task for a chat message (`/ask ` makes it a question). */
export function messageArgs(
  raw: string,
  chips: Chips,
  editor: EditorState | undefined,
  conversationId: string | undefined,
): { command: "k2lsp.ask" | "k2lsp.task"; args: Record<string, unknown> } {
  const ask = raw.startsWith("/ask ");
  const { text, paths } = parseFileTags(ask ? raw.slice(5) : raw);
  const args: Record<string, unknown> = { [ask ? "question" : "task"]: text };
  const items = contextItems(paths, chips, editor);
  if (items.length) args.context = items;
  if (conversationId) args.conversationId = conversationId;
  return { command: ask ? "k2lsp.ask" : "k2lsp.task", args };
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

function lines(n: number): string {
  return `${n} line${n === 1 ? "" : "s"}`;
}

/** The transcript as HTML: reasoning and diffs in closed <details>, everything escaped. */
export function renderHtml(entries: Entry[]): string {
  const out: string[] = [];
  for (const e of entries) {
    switch (e.kind) {
      case "user": {
        const chips = e.chips.map((c) => `<span class="chip">${escapeHtml(c)}</span>`).join("");
        out.push(`<div class="user"><b>You</b> ${chips}<pre>${escapeHtml(e.text)}</pre></div>`);
        break;
      }
      case "header":
        out.push(`<div class="header">K2 · ${escapeHtml(e.mode)} · ${escapeHtml(e.runId)}</div>`);
        break;
      case "reasoning": {
        const n = e.text.split("\n").length;
        out.push(`<details class="reasoning"><summary>reasoning (${lines(n)})</summary><pre>${escapeHtml(e.text)}</pre></details>`);
        break;
      }
      case "answer":
        out.push(`<div class="answer"><pre>${escapeHtml(e.text)}</pre></div>`);
        break;
      case "tool": {
        const result = e.ok === undefined ? "" : ` <span class="${e.ok ? "ok" : "err"}">${e.ok ? "ok" : "error"}: ${escapeHtml(e.summary ?? "")}</span>`;
        out.push(`<div class="tool">→ ${escapeHtml(e.name)} <code>${escapeHtml(e.args)}</code>${result}</div>`);
        break;
      }
      case "diff":
        out.push(`<details class="diff"><summary>✎ ${escapeHtml(e.path)}</summary><pre>${escapeHtml(e.diff)}</pre></details>`);
        break;
      case "tests":
        out.push(`<div class="tests">${escapeHtml(e.text)}</div>`);
        break;
      case "end": {
        const why = e.outcome === "success" ? "" : `<div class="summary">${escapeHtml(e.summary)}</div>`;
        out.push(`<div class="end">${escapeHtml(e.outcome)} · ${e.tokens} tokens · $${e.costUsd.toFixed(4)}</div>${why}`);
        break;
      }
      case "note":
        out.push(`<div class="note">${escapeHtml(e.text)}</div>`);
        break;
    }
  }
  return out.join("\n");
}

/** Recent events per run, so a listener that learns its run id after the run's first events
 * (the command answers after the stream started) still sees them all. */
export class EventHub {
  private readonly events = new Map<string, K2Event[]>();
  private readonly listeners = new Map<string, Set<(ev: K2Event) => void>>();

  constructor(private readonly keepRuns = 20) {}

  /** Record one event and hand it to the run's listeners. */
  record(ev: K2Event): void {
    let list = this.events.get(ev.run_id);
    if (!list) {
      list = [];
      this.events.set(ev.run_id, list);
      while (this.events.size > this.keepRuns) this.events.delete(this.events.keys().next().value as string);
    }
    list.push(ev);
    for (const fn of this.listeners.get(ev.run_id) ?? []) fn(ev);
  }

  /** Listen to `runId` (its earlier events first); returns the function that stops it. */
  listen(runId: string, fn: (ev: K2Event) => void): () => void {
    for (const ev of this.events.get(runId) ?? []) fn(ev);
    const set = this.listeners.get(runId) ?? new Set();
    set.add(fn);
    this.listeners.set(runId, set);
    return () => set.delete(fn);
  }
}
