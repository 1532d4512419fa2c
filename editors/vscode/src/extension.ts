/** VS Code entry point: starts k2lsp, feeds the "K2" Output channel and the status bar. */

import * as path from "node:path";
import * as vscode from "vscode";
import { LanguageClient, type LanguageClientOptions, type ServerOptions } from "vscode-languageclient/node";
import { mergeDiagnostics } from "./diagnostics";
import { requestError, type SetupResult, setupLines, setupMessage } from "./health";
import { buildInitializationOptions, resolveServerPath } from "./options";
import {
  CMD,
  DELIVERY_NOTIFICATION,
  type DeliveryParams,
  FIX_FAILING_TEST_TITLE,
  type K2Event,
  REVIEW_NOTIFICATION,
  type ReviewParams,
  type RunStarted,
  runIdArgs,
  STREAM_NOTIFICATION,
  type StreamParams,
  textArgs,
  UNTRUSTED_NOTIFICATION,
  type UntrustedParams,
} from "./protocol";
import { ChatPanel, registerParticipant } from "./chat";
import { EventHub } from "./chatcore";
import { StreamRenderer } from "./render";
import { HeavyPicker } from "./heavy";
import { ReviewController } from "./review";
import { RunTracker } from "./status";

const SECRET_KEY = "k2lsp.apiKey";

let client: LanguageClient | undefined;
let output: vscode.OutputChannel;
let statusItem: vscode.StatusBarItem;
const renderer = new StreamRenderer();
const tracker = new RunTracker();
const hub = new EventHub();
let chat: ChatPanel | undefined;
let participant = false;
const review = new ReviewController((command, args) => exec(command, args));
const heavy = new HeavyPicker(async (command, args) => {
  if (!client) throw new Error("the k2lsp server is not running");
  return client.sendRequest("workspace/executeCommand", { command, arguments: [args] });
});

function settings(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("k2lsp");
}

function settingsObject(): Record<string, unknown> {
  const cfg = settings();
  const out: Record<string, unknown> = {};
  for (const key of ["provider", "baseUrl", "model", "maxSteps", "maxTokens", "budgetUsd", "timeoutS", "sandbox", "testCommand", "preview", "heavyCandidates"]) {
    out[key] = cfg.get(key);
  }
  return out;
}

function updateStatus(): void {
  const text = tracker.text();
  if (!text) {
    statusItem.hide();
    return;
  }
  const running = tracker.active().length > 0;
  statusItem.text = `${running ? "$(sync~spin)" : "$(hubot)"} ${text}`;
  statusItem.tooltip = running ? "K2 run in progress: click to cancel" : "K2: show output";
  statusItem.command = running ? "k2.cancel" : "k2.showOutput";
  statusItem.show();
}

function showEvent(ev: K2Event): void {
  const text = renderer.render(ev);
  if (text) output.append(text);
  if (ev.type === "run_started") output.show(true);
  // a failed run is not announced here: the server says it once with window/showMessage
}

function onStream(params: StreamParams): void {
  for (const ev of params.events) {
    tracker.update(ev);
    hub.record(ev);
    heavy.onEvent(ev as unknown as Record<string, unknown>);
    if (ev.type === "run_finished") review.onDelivery(ev.run_id, "finished"); // e.g. cancelled in review
    if (!chat?.onEvent(ev)) showEvent(ev); // runs of the chat panel render there (chat.ts)
  }
  updateStatus();
}

async function onDelivery(params: DeliveryParams): Promise<void> {
  const msg = `K2 ${params.runId}: ${params.status}${params.message ? ` — ${params.message}` : ""}`;
  output.append(renderer.note(`[delivery] ${msg}${params.patchPath ? ` (patch: ${params.patchPath})` : ""}`));
  review.onDelivery(params.runId, params.status, params.patchPath);
  // the server itself says it with window/showMessage: no second pop-up here
  if ((params.status === "applied" || params.status === "merged") && settings().get<boolean>("saveAfterApply", true)) {
    await saveChanged(params.paths ?? []);
  }
}

async function saveChanged(paths: string[]): Promise<void> {
  const roots = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  const wanted = new Set(paths.flatMap((p) => (path.isAbsolute(p) ? [p] : roots.map((r) => path.join(r, p)))));
  for (const doc of vscode.workspace.textDocuments) {
    if (doc.isDirty && wanted.has(doc.uri.fsPath)) await doc.save();
  }
}

async function serverEnv(context: vscode.ExtensionContext): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const key = await context.secrets.get(SECRET_KEY);
  if (key) env[settings().get<string>("apiKeyEnv", "K2LSP_API_KEY")] = key;
  return env;
}

/** The workspace's k2lsp.toml sets keys ignored in restricted mode: offer VS Code's trust. */
async function onUntrusted(p: UntrustedParams): Promise<void> {
  output?.appendLine(p.message);
  if (!p.editorDecides) return; // the server's own showMessage already says what to do
  const pick = await vscode.window.showWarningMessage(
    `K2: this workspace is not trusted, so its k2lsp settings ${p.keys.join(", ")} are ignored.`,
    "Manage Workspace Trust",
  );
  if (pick) void vscode.commands.executeCommand("workbench.trust.manage");
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  let command: string;
  try {
    command = resolveServerPath(
      settings().get<string>("serverPath", ""),
      folders,
      process.env.PATH,
      process.platform,
      vscode.workspace.isTrusted,
    );
  } catch (err) {
    const pick = await vscode.window.showErrorMessage(String((err as Error).message), "Open settings");
    if (pick) void vscode.commands.executeCommand("workbench.action.openSettings", "k2lsp.serverPath");
    return;
  }
  const args = settings().get<string[]>("serverArgs", ["--stdio"]);
  const cwd = folders[0];
  const serverOptions: ServerOptions = { command, args, options: { env: await serverEnv(context), cwd } };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: buildInitializationOptions(settingsObject(), vscode.workspace.isTrusted),
    outputChannelName: "K2 Language Server",
    middleware: {
      // every diagnostic under the cursor (any source), not only those VS Code picked
      provideCodeActions: (document, range, context, token, next) => {
        const all = vscode.languages.getDiagnostics(document.uri);
        const diagnostics = mergeDiagnostics(context.diagnostics, all, range);
        return next(document, range, { ...context, diagnostics }, token);
      },
      workspace: {
        // answer the server's workspace/configuration "k2lsp" with the set options only
        // (VS Code would hand over every default, "" included, and the editor-only keys)
        configuration: async (params, token, next) => {
          const answers = await next(params, token);
          if (!Array.isArray(answers)) return answers;
          return params.items.map((item, i) =>
            item.section === "k2lsp"
              ? buildInitializationOptions(settingsObject(), vscode.workspace.isTrusted).k2lsp
              : answers[i],
          );
        },
      },
    },
  };
  client = new LanguageClient("k2lsp", "K2 (k2lsp)", serverOptions, clientOptions);
  client.onNotification(STREAM_NOTIFICATION, onStream);
  client.onNotification(DELIVERY_NOTIFICATION, (p: DeliveryParams) => void onDelivery(p));
  client.onNotification(REVIEW_NOTIFICATION, (p: ReviewParams) => review.onReview(p));
  client.onNotification(UNTRUSTED_NOTIFICATION, (p: UntrustedParams) => void onUntrusted(p));
  await client.start();
}

async function stopClient(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) await c.stop().catch(() => undefined);
}

async function exec<T>(command: string, args: Record<string, unknown>): Promise<T | undefined> {
  if (!client) {
    void vscode.window.showErrorMessage("K2: the k2lsp server is not running (see the K2 Language Server output).");
    return undefined;
  }
  try {
    return await client.sendRequest<T>("workspace/executeCommand", { command, arguments: [args] });
  } catch (err) {
    void vscode.window.showErrorMessage(requestError(command, (err as Error).message));
    return undefined;
  }
}

function editorArgs(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const ed = vscode.window.activeTextEditor;
  if (!ed) return { ...extra };
  const sel = ed.selection;
  const range = {
    start: { line: sel.start.line, character: sel.start.character },
    end: { line: sel.end.line, character: sel.end.character },
  };
  return textArgs(ed.document.uri.toString(), range, extra);
}

async function startRun(command: string, args: Record<string, unknown>): Promise<void> {
  const res = await exec<RunStarted>(command, args);
  if (res?.runId) output.show(true);
}

async function ask(prompt: string): Promise<string | undefined> {
  const value = await vscode.window.showInputBox({ prompt, ignoreFocusOut: true });
  return value?.trim() ? value.trim() : undefined;
}

async function fixFailingTest(): Promise<void> {
  const ed = vscode.window.activeTextEditor;
  if (!ed) {
    void vscode.window.showErrorMessage("K2: open a test file and put the cursor in the failing test.");
    return;
  }
  const actions = await vscode.commands.executeCommand<(vscode.CodeAction | vscode.Command)[]>(
    "vscode.executeCodeActionProvider",
    ed.document.uri,
    ed.selection,
  );
  for (const a of actions ?? []) {
    const cmd = "command" in a && typeof a.command === "object" ? a.command : (a as vscode.Command);
    if (a.title.includes(FIX_FAILING_TEST_TITLE) && cmd?.command === CMD.fixFailingTest) {
      await startRun(CMD.fixFailingTest, (cmd.arguments?.[0] ?? {}) as Record<string, unknown>);
      return;
    }
  }
  const testName = await ask("K2: no test found at the cursor. Name of the failing test:");
  if (testName) await startRun(CMD.fixFailingTest, { uri: ed.document.uri.toString(), testName });
}

/** "K2: Check setup": the server's own checks (key, GET /models, sandbox), one line each. */
async function checkSetup(): Promise<void> {
  const res = await exec<SetupResult>(CMD.checkSetup, {});
  if (!res) return;
  output.appendLine("[K2 setup]");
  for (const line of setupLines(res)) output.appendLine(line);
  const msg = setupMessage(res);
  const show = msg.level === "error" ? vscode.window.showErrorMessage : msg.level === "warning" ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
  void show(msg.text);
}

function register(context: vscode.ExtensionContext): void {
  const reg = (id: string, fn: () => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  reg("k2.ask", async () => {
    const question = await ask("Ask K2 (about the selection or file)");
    if (question) await startRun(CMD.ask, editorArgs({ question }));
  });
  reg("k2.task", async () => {
    const task = await ask("K2 task (may edit files)");
    if (task) await startRun(CMD.task, editorArgs({ task }));
  });
  reg("k2.fixFailingTest", fixFailingTest);
  reg("k2.chat", openChat);
  reg("k2.explain", () => startRun(CMD.explain, editorArgs()));
  reg("k2.refactor", async () => {
    const instruction = await vscode.window.showInputBox({ prompt: "How to refactor (empty: improve structure and names)" });
    if (instruction !== undefined) await startRun(CMD.refactor, editorArgs(instruction ? { instruction } : {}));
  });
  reg("k2.refactorRepository", async () => {
    const instruction = await ask("K2: refactor across the repository (a job in batches, delivered as a branch)");
    if (instruction) await exec(CMD.refactorRepository, { instruction });
  });
  reg("k2.cancel", async () => {
    const res = await exec<{ cancelled: string[]; jobs?: number }>(CMD.cancel, runIdArgs());
    const what = res ? [...res.cancelled, ...(res.jobs ? [`${res.jobs} refactor job(s) (resumable)`] : [])] : [];
    if (res) void vscode.window.showInformationMessage(what.length ? `K2: cancelled ${what.join(", ")}` : "K2: no run to cancel");
  });
  reg("k2.undo", async () => {
    const res = await exec<{ runId: string; restored: string[] }>(CMD.undo, runIdArgs());
    if (res) void vscode.window.showInformationMessage(`K2: undid ${res.runId} (${res.restored.join(", ") || "no file"})`);
  });
  // during a review per hunk these decide every pending hunk (the CodeLens decide one)
  reg("k2.accept", () => (review.pending() ? vscode.commands.executeCommand("k2.acceptAll") : exec(CMD.accept, runIdArgs())));
  reg("k2.reject", () => (review.pending() ? vscode.commands.executeCommand("k2.rejectAll") : exec(CMD.reject, runIdArgs())));
  review.register(context);
  heavy.register(context);
  reg("k2.showOutput", () => output.show(true));
  reg("k2.checkSetup", checkSetup);
  reg("k2.setApiKey", async () => {
    const key = await vscode.window.showInputBox({ prompt: "K2 API key (kept in VS Code's secret storage)", password: true, ignoreFocusOut: true });
    if (!key) return;
    await context.secrets.store(SECRET_KEY, key.trim());
    await stopClient();
    await startClient(context);
  });
  reg("k2.clearApiKey", async () => {
    await context.secrets.delete(SECRET_KEY);
    await stopClient();
    await startClient(context);
  });
  reg("k2.restart", async () => {
    await stopClient();
    await startClient(context);
  });
}

/** Is the host's chat view usable: on, and set up with a chat model (else it asks to sign in)? */
async function hostChatReady(): Promise<boolean> {
  if (vscode.workspace.getConfiguration("chat").get<boolean>("disableAIFeatures", false)) return false;
  if (!(await vscode.commands.getCommands(true)).includes("workbench.action.chat.open")) return false;
  const models = await Promise.resolve(vscode.lm?.selectChatModels?.()).catch(() => undefined);
  return (models?.length ?? 0) > 0;
}

/** "K2: Open chat": the chat view with "@k2" where the host's chat is ready, else the webview. */
async function openChat(): Promise<void> {
  const mode = settings().get<string>("chatView", "auto");
  if (participant && mode !== "webview" && (mode === "participant" || (await hostChatReady()))) {
    await vscode.commands.executeCommand("workbench.action.chat.open", { query: "@k2 " });
    return;
  }
  chat?.open();
}

/** Extension activation. */
export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("K2");
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  context.subscriptions.push(output, statusItem);
  chat = new ChatPanel(exec, showEvent);
  context.subscriptions.push(vscode.window.onDidChangeActiveTextEditor((ed) => chat?.track(ed)));
  participant = registerParticipant(context, exec, (runId, fn) => hub.listen(runId, fn));
  output.appendLine(`chat: ${participant ? "@k2 chat participant registered" : "no chat participant API in this host"}; "K2: Open chat" picks the view (k2lsp.chatView)`);
  register(context);
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("k2lsp")) {
        await stopClient();
        await startClient(context);
      }
    }),
  );
  // trusting the workspace changes the server (workspace venv) and its options: restart
  context.subscriptions.push(
    vscode.workspace.onDidGrantWorkspaceTrust(async () => {
      await stopClient();
      await startClient(context);
    }),
  );
  await startClient(context);
}

/** Extension deactivation. */
export async function deactivate(): Promise<void> {
  await stopClient();
}
