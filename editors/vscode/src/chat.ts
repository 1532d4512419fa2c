/** The K2 chat in VS Code: a conversation with follow-ups and context chips.
 *
 * Where the host has the chat participant API and its chat view is ready (on, with a chat
 * model; code-server without one only offers a Copilot sign-in), "@k2" is a chat participant (VS Code's own #file / #selection references become context items; the
 * conversation id rides in the result metadata). Everywhere else (code-server with AI features
 * off, VSCodium) "K2: Open chat" opens a webview panel: the transcript (reasoning and diffs
 * folded, tool calls, cost), a message box and chips for the current file (its unsaved text and
 * version), the selection and the diagnostics. `#file:path` in a message adds that file. */

import * as vscode from "vscode";
import { type Chips, ChatModel, type EditorState, messageArgs, renderHtml } from "./chatcore";
import type { K2Event, RunStarted } from "./protocol";

export type Exec = <T>(command: string, args: Record<string, unknown>) => Promise<T | undefined>;

const SEVERITY = ["error", "warning", "info", "hint"];

/** Snapshot of `editor` for the chips (undefined when there is no file editor). */
export function editorState(editor: vscode.TextEditor | undefined): EditorState | undefined {
  if (!editor || editor.document.isClosed || editor.document.uri.scheme !== "file") return undefined;
  const doc = editor.document;
  const sel = editor.selection;
  const selection = sel.isEmpty
    ? undefined
    : { startLine: sel.start.line + 1, endLine: sel.end.line + 1, text: doc.getText(sel) };
  const diagnostics = vscode.languages.getDiagnostics(doc.uri).map((d) => ({
    line: d.range.start.line + 1,
    message: d.message,
    severity: SEVERITY[d.severity] ?? "error",
    source: d.source,
    code: d.code === undefined ? undefined : String(typeof d.code === "object" ? d.code.value : d.code),
  }));
  return { uri: doc.uri.toString(), text: doc.getText(), version: doc.version, selection, diagnostics };
}

/** The chat webview panel (one per window). */
export class ChatPanel {
  readonly model = new ChatModel();
  private panel: vscode.WebviewPanel | undefined;
  private lastEditor: vscode.TextEditor | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly exec: Exec,
    private readonly fallback: (ev: K2Event) => void,
  ) {
    this.lastEditor = vscode.window.activeTextEditor;
  }

  /** Remember the last file editor: the chips refer to it while the panel has the focus. */
  track(editor: vscode.TextEditor | undefined): void {
    if (editor && editor.document.uri.scheme === "file") this.lastEditor = editor;
  }

  /** Show the panel (created on first use). */
  open(): void {
    if (this.panel) {
      this.panel.reveal(vscode.ViewColumn.Beside);
      return;
    }
    this.panel = vscode.window.createWebviewPanel("k2lsp.chat", "K2 Chat", vscode.ViewColumn.Beside, {
      enableScripts: true,
      retainContextWhenHidden: true,
    });
    this.panel.webview.html = shell(nonce());
    this.panel.onDidDispose(() => (this.panel = undefined));
    this.panel.webview.onDidReceiveMessage((msg: { type: string; text?: string; chips?: Chips }) => {
      if (msg.type === "send" && msg.text) void this.send(msg.text, msg.chips ?? { file: false, selection: false, diagnostics: false });
      if (msg.type === "new") {
        this.model.conversationId = undefined;
        this.model.entries.push({ kind: "note", text: "new conversation" });
        this.refresh();
      }
      if (msg.type === "ready") this.refresh();
    });
  }

  /** Route a stream event: true when the chat took it. */
  onEvent(ev: K2Event): boolean {
    const mine = this.model.onEvent(ev);
    if (mine) this.refresh();
    return mine;
  }

  /** Send a message (the first starts a conversation, later ones continue it). */
  async send(raw: string, chips: Chips): Promise<void> {
    const editor = editorState(this.lastEditor);
    const { command, args } = messageArgs(raw.trim(), chips, editor, this.model.conversationId);
    const names = Object.entries(chips).filter(([, on]) => on).map(([k]) => k);
    this.model.addUser(raw.trim(), editor ? names : []);
    this.refresh();
    let res: RunStarted | undefined;
    let error: string | undefined;
    try {
      res = await this.exec<RunStarted>(command, args);
    } catch (err) {
      error = (err as Error).message;
    }
    const others = this.model.adopt(res?.runId, res?.conversationId, res ? undefined : (error ?? "see the error message"));
    for (const ev of others) this.fallback(ev);
    this.refresh();
  }

  private refresh(): void {
    if (!this.panel || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.panel?.webview.postMessage({
        type: "render",
        html: renderHtml(this.model.entries),
        conversationId: this.model.conversationId ?? "",
        busy: this.model.busy(),
      });
    }, 30);
  }
}

function nonce(): string {
  let out = "";
  for (let i = 0; i < 32; i++) out += "abcdefghijklmnopqrstuvwxyz0123456789"[Math.floor(Math.random() * 36)];
  return out;
}

/** The panel's HTML: transcript, chips, message box; the extension re-renders the transcript. */
function shell(n: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'nonce-${n}'; script-src 'nonce-${n}';">
<style nonce="${n}">
body{font-family:var(--vscode-font-family);font-size:var(--vscode-font-size);color:var(--vscode-foreground);padding:0 8px}
pre{white-space:pre-wrap;margin:2px 0;font-family:var(--vscode-editor-font-family)}
.user{border-left:3px solid var(--vscode-textLink-foreground);padding-left:6px;margin-top:10px}
.header{margin-top:8px;font-weight:bold}.reasoning,.diff{opacity:.8}.tool,.tests,.end,.note{font-size:90%}
.err{color:var(--vscode-errorForeground)}.chip{border:1px solid var(--vscode-contrastBorder,#888);border-radius:8px;padding:0 6px;margin-left:4px;font-size:85%}
#form{position:sticky;bottom:0;background:var(--vscode-editor-background);padding:6px 0}
textarea{width:100%;min-height:60px;color:inherit;background:var(--vscode-input-background)}
</style></head><body>
<div id="transcript"></div>
<div id="form">
<label><input type="checkbox" id="chip-file">current file</label>
<label><input type="checkbox" id="chip-selection">selection</label>
<label><input type="checkbox" id="chip-diagnostics">diagnostics</label>
<span id="conversation"></span>
<textarea id="message" placeholder="Ask K2, or give it a task (/ask for a question; #file:path adds a file). Ctrl+Enter sends."></textarea>
<button id="send">Send</button> <button id="new">New conversation</button> <span id="busy"></span>
</div>
<script nonce="${n}">
const vscode = acquireVsCodeApi();
const $ = (id) => document.getElementById(id);
function send() {
  const text = $("message").value.trim();
  if (!text) return;
  vscode.postMessage({ type: "send", text, chips: { file: $("chip-file").checked, selection: $("chip-selection").checked, diagnostics: $("chip-diagnostics").checked } });
  $("message").value = "";
}
$("send").addEventListener("click", send);
$("new").addEventListener("click", () => vscode.postMessage({ type: "new" }));
$("message").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(); });
window.addEventListener("message", (e) => {
  const m = e.data;
  if (m.type !== "render") return;
  const open = new Set([...document.querySelectorAll("details[open]")].map((d) => d.dataset.i));
  $("transcript").innerHTML = m.html;
  document.querySelectorAll("#transcript details").forEach((d, i) => { d.dataset.i = String(i); if (open.has(String(i))) d.open = true; });
  $("conversation").textContent = m.conversationId ? "conversation " + m.conversationId : "";
  $("busy").textContent = m.busy ? "K2 is working…" : "";
  window.scrollTo(0, document.body.scrollHeight);
});
vscode.postMessage({ type: "ready" });
</script></body></html>`;
}

/** Register "@k2" where the host has the chat participant API; false when it has not. */
export function registerParticipant(
  context: vscode.ExtensionContext,
  exec: Exec,
  listen: (runId: string, fn: (ev: K2Event) => void) => () => void,
): boolean {
  const chatApi = (vscode as unknown as { chat?: typeof vscode.chat }).chat;
  if (!chatApi?.createChatParticipant) return false;
  const handler: vscode.ChatRequestHandler = async (request, ctx, stream, token) => {
    let conversationId: string | undefined;
    for (const turn of ctx.history) {
      if (turn instanceof vscode.ChatResponseTurn) {
        const id = (turn.result.metadata as { conversationId?: string } | undefined)?.conversationId;
        if (id) conversationId = id;
      }
    }
    const items: Record<string, unknown>[] = [];
    for (const ref of request.references) {
      if (ref.value instanceof vscode.Uri) items.push({ kind: "file", path: ref.value.fsPath });
      else if (ref.value instanceof vscode.Location) {
        const r = ref.value.range;
        items.push({ kind: "selection", uri: ref.value.uri.toString(), startLine: r.start.line + 1, endLine: r.end.line + 1 });
      }
    }
    const ask = request.command === "ask";
    const args: Record<string, unknown> = { [ask ? "question" : "task"]: request.prompt };
    if (items.length) args.context = items;
    if (conversationId) args.conversationId = conversationId;
    const res = await exec<RunStarted>(ask ? "k2lsp.ask" : "k2lsp.task", args);
    if (!res?.runId) return { errorDetails: { message: "K2 did not start (see the error message)" } };
    await new Promise<void>((resolve) => {
      let cost = 0;
      let tokens = 0;
      const stop = listen(res.runId, (ev) => {
        if (ev.type === "reasoning") stream.progress(`thinking: ${ev.text.trim().slice(0, 80)}`);
        else if (ev.type === "content") stream.markdown(ev.text);
        else if (ev.type === "tool_call") stream.progress(`${ev.name} ${JSON.stringify(ev.args).slice(0, 80)}`);
        else if (ev.type === "edit") stream.markdown(`\n\n✎ ${ev.path}\n\`\`\`diff\n${ev.diff}\n\`\`\`\n`);
        else if (ev.type === "usage") [cost, tokens] = [ev.total_cost_usd, ev.total_prompt_tokens + ev.total_completion_tokens];
        else if (ev.type === "run_finished") {
          stream.markdown(`\n\n*${ev.outcome} · ${tokens} tokens · $${cost.toFixed(4)}*`);
          stop();
          resolve();
        }
      });
      token.onCancellationRequested(() => void exec("k2lsp.cancel", { runId: res.runId }));
    });
    return { metadata: { conversationId: res.conversationId } };
  };
  const participant = chatApi.createChatParticipant("k2lsp.k2", handler);
  context.subscriptions.push(participant);
  return true;
}
