// Contract test of the extension's client code (dist/core.mjs: initializationOptions, command
// names and arguments, the stream renderer and the run tracker) against the real k2lsp server
// over stdio. Run by tests/test_editor_vscode.py, which starts the fake K2 host and sets:
//   K2TEST_BIN (server executable), K2_ROOT (a repo whose test_calc.py fails), K2LSP_BASE_URL,
//   K2LSP_API_KEY, K2LSP_MODEL, K2LSP_PROVIDER. The fake host's script: a fix run, then a reply
//   that stalls (for the cancel test).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import {
  buildInitializationOptions,
  CMD,
  DELIVERY_NOTIFICATION,
  FIX_FAILING_TEST_TITLE,
  resolveServerPath,
  RunTracker,
  runIdArgs,
  STREAM_NOTIFICATION,
  StreamRenderer,
  textArgs,
} from "../dist/core.mjs";

const require = createRequire(import.meta.url);
const rpc = require("vscode-jsonrpc/node");

const ROOT = process.env.K2_ROOT;
const WAIT_MS = Number(process.env.K2_WAIT_MS ?? 180000);
// VS Code's defaults ("" and null) must not reach the server
const SETTINGS = { sandbox: "none", maxSteps: 20, provider: "", model: "", baseUrl: "", preview: null };
const uriOf = (rel) => pathToFileURL(path.join(ROOT, rel)).href;

let proc;
let conn;
const docs = new Map(); // uri -> {version, text}
const notifications = []; // every server -> client notification {method, params}
const streamEvents = [];
const deliveries = [];
const applied = [];
let stderr = "";

function waitFor(what, cond, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const v = cond();
      if (v) return resolve(v);
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}; server stderr:\n${stderr.slice(-3000)}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

function offsetAt(text, pos) {
  const lines = text.split("\n");
  let off = 0;
  for (let i = 0; i < pos.line; i++) off += lines[i].length + 1;
  return off + pos.character;
}

function applyTextEdits(text, edits) {
  const sorted = [...edits].sort((a, b) => offsetAt(text, b.range.start) - offsetAt(text, a.range.start));
  for (const e of sorted) {
    text = text.slice(0, offsetAt(text, e.range.start)) + e.newText + text.slice(offsetAt(text, e.range.end));
  }
  return text;
}

function onApplyEdit(params) {
  applied.push(params);
  const edit = params.edit;
  const changes = edit.documentChanges ?? Object.entries(edit.changes ?? {}).map(([uri, edits]) => ({ textDocument: { uri, version: null }, edits }));
  for (const dc of changes) {
    if (!dc.textDocument) continue; // file operations are not expected here
    const uri = dc.textDocument.uri;
    const doc = docs.get(uri) ?? { version: 0, text: readFileSync(new URL(uri), "utf8") };
    if (dc.textDocument.version != null && docs.has(uri) && dc.textDocument.version !== doc.version) {
      return { applied: false, failureReason: `version mismatch for ${uri}` };
    }
    doc.text = applyTextEdits(doc.text, dc.edits);
    doc.version += 1;
    docs.set(uri, doc);
    conn.sendNotification("textDocument/didChange", {
      textDocument: { uri, version: doc.version },
      contentChanges: [{ text: doc.text }],
    });
  }
  return { applied: true };
}

before(async () => {
  const command = resolveServerPath(process.env.K2TEST_BIN ?? "", [ROOT], process.env.PATH);
  proc = spawn(command, ["--stdio"], { cwd: ROOT, env: process.env, stdio: ["pipe", "pipe", "pipe"] });
  proc.stderr.on("data", (d) => (stderr += d.toString()));
  conn = rpc.createMessageConnection(new rpc.StreamMessageReader(proc.stdout), new rpc.StreamMessageWriter(proc.stdin));
  conn.onRequest("workspace/applyEdit", onApplyEdit);
  conn.onRequest("window/workDoneProgress/create", () => null);
  conn.onRequest("client/registerCapability", () => null);
  // as the extension's middleware answers: the set options for "k2lsp", nothing else
  conn.onRequest("workspace/configuration", (p) =>
    p.items.map((item) => (item.section === "k2lsp" ? buildInitializationOptions(SETTINGS).k2lsp : null)),
  );
  conn.onRequest("window/showDocument", () => ({ success: true }));
  conn.onRequest("window/showMessageRequest", () => null);
  conn.onUnhandledNotification((n) => notifications.push({ method: n.method, params: n.params }));
  conn.onNotification(STREAM_NOTIFICATION, (p) => {
    notifications.push({ method: STREAM_NOTIFICATION, params: p });
    for (const ev of p.events) streamEvents.push(ev);
  });
  conn.onNotification(DELIVERY_NOTIFICATION, (p) => {
    notifications.push({ method: DELIVERY_NOTIFICATION, params: p });
    deliveries.push(p);
  });
  conn.listen();
  const init = await conn.sendRequest("initialize", {
    processId: process.pid,
    rootUri: pathToFileURL(ROOT).href,
    workspaceFolders: [{ uri: pathToFileURL(ROOT).href, name: "proj" }],
    capabilities: {
      workspace: { applyEdit: true, workspaceEdit: { documentChanges: true }, configuration: true },
      window: { workDoneProgress: true, showDocument: { support: true } },
      textDocument: {
        codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ["", "quickfix", "refactor"] } } },
      },
    },
    initializationOptions: buildInitializationOptions(SETTINGS),
  });
  globalThis.serverCapabilities = init.capabilities;
  conn.sendNotification("initialized", {});
});

after(async () => {
  try {
    await Promise.race([conn.sendRequest("shutdown"), new Promise((r) => setTimeout(r, 10000))]);
    conn.sendNotification("exit");
  } catch {
    /* the server may already be gone */
  }
  setTimeout(() => proc.kill("SIGKILL"), 5000).unref();
  conn.dispose();
});

test("the server offers every command the extension calls", () => {
  const offered = new Set(globalThis.serverCapabilities.executeCommandProvider?.commands ?? []);
  for (const name of Object.values(CMD)) assert.ok(offered.has(name), `server does not offer ${name}`);
});

test("fix failing test: code action, stream rendered, edit applied, delivery reported", async () => {
  const uri = uriOf("test_calc.py");
  const text = readFileSync(path.join(ROOT, "test_calc.py"), "utf8");
  docs.set(uri, { version: 1, text });
  conn.sendNotification("textDocument/didOpen", { textDocument: { uri, languageId: "python", version: 1, text } });
  const line = text.split("\n").findIndex((l) => l.includes("def test_add")) + 1;
  const actions = await conn.sendRequest("textDocument/codeAction", {
    textDocument: { uri },
    range: { start: { line, character: 4 }, end: { line, character: 4 } },
    context: { diagnostics: [] },
  });
  const fix = (actions ?? []).find((a) => a.title.includes(FIX_FAILING_TEST_TITLE));
  assert.ok(fix, `no "${FIX_FAILING_TEST_TITLE}" action among ${JSON.stringify(actions?.map((a) => a.title))}`);
  const cmd = typeof fix.command === "object" ? fix.command : fix;
  assert.equal(cmd.command, CMD.fixFailingTest);
  assert.equal(cmd.arguments.length, 1);
  assert.equal(cmd.arguments[0].testName, "test_add");

  const started = await conn.sendRequest("workspace/executeCommand", { command: cmd.command, arguments: cmd.arguments });
  assert.match(started.runId, /\S/);
  const runId = started.runId;
  await waitFor("run_finished", () => streamEvents.find((e) => e.run_id === runId && e.type === "run_finished"));
  await waitFor("k2lsp/delivery", () => deliveries.find((d) => d.runId === runId));

  const mine = streamEvents.filter((e) => e.run_id === runId);
  const seqs = mine.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "events out of seq order");
  assert.equal(new Set(seqs).size, seqs.length, "an event was repeated");
  assert.equal(mine[0].type, "run_started");
  assert.equal(mine.at(-1).type, "run_finished");
  assert.equal(mine.at(-1).outcome, "success", JSON.stringify(mine.at(-1)));

  const renderer = new StreamRenderer();
  const tracker = new RunTracker();
  let out = "";
  for (const ev of mine) {
    tracker.update(ev);
    out += renderer.render(ev);
  }
  assert.match(out, new RegExp(`^━━ K2 fix_failing_test · ${runId}`, "m"));
  assert.match(out, /^ {2}┆ The test expects add\(2, 3\) == 5\. Let me read calc\.py first\.$/m);
  assert.match(out, /^→ read_file .*calc\.py/m);
  assert.match(out, /^← read_file ok/m);
  assert.match(out, /^→ edit_file /m);
  assert.match(out, /Fixed add\(\): it subtracted instead of adding\./);
  assert.match(out, /^━━ finished: success \(exit 0\)/m);
  assert.match(tracker.text(), /^K2 success · \d/);

  const delivery = deliveries.find((d) => d.runId === runId);
  assert.ok(["applied", "merged"].includes(delivery.status), JSON.stringify(delivery));
  assert.ok(delivery.paths.includes("calc.py"), JSON.stringify(delivery));
  const calc = docs.get(uriOf("calc.py"));
  assert.ok(calc, "no edit reached calc.py");
  assert.equal(calc.text, "def add(a, b):\n    return a + b\n");
});

test("cancel stops a streaming run", async () => {
  const uri = uriOf("calc.py");
  const before = streamEvents.length;
  const started = await conn.sendRequest("workspace/executeCommand", {
    command: CMD.task,
    arguments: [textArgs(uri, undefined, { task: "Explain every function in great detail" })],
  });
  const runId = started.runId;
  await waitFor("reasoning", () => streamEvents.slice(before).find((e) => e.run_id === runId && e.type === "reasoning"));
  const res = await conn.sendRequest("workspace/executeCommand", { command: CMD.cancel, arguments: [runIdArgs()] });
  assert.deepEqual(res.cancelled, [runId]);
  const fin = await waitFor("run_finished", () => streamEvents.find((e) => e.run_id === runId && e.type === "run_finished"));
  assert.equal(fin.outcome, "cancelled");
  assert.equal(fin.exit_code, 130);
  const tracker = new RunTracker();
  for (const ev of streamEvents.filter((e) => e.run_id === runId)) tracker.update(ev);
  assert.match(tracker.text(), /^K2 cancelled/);
});

test("the API key never reaches the client", () => {
  const key = process.env.K2LSP_API_KEY;
  assert.ok(key && key.length > 8);
  assert.ok(!JSON.stringify(notifications).includes(key), "the API key appeared in a notification");
  assert.ok(!stderr.includes(key), "the API key appeared in the server's log");
});
