// Unit tests of the extension's vscode-free core (dist/core.mjs): server lookup and its errors,
// initializationOptions, the Output channel renderer, the status text and review hunks.
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import {
  applyHunks,
  buildInitializationOptions,
  mergeDiagnostics,
  requestError,
  resolveServerPath,
  RunTracker,
  setupLines,
  setupMessage,
  shiftHunks,
  StreamRenderer,
  textArgs,
} from "../dist/core.mjs";

function fakeExe(dir, rel) {
  const file = path.join(dir, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, "#!/bin/sh\n");
  chmodSync(file, 0o755);
  return file;
}

test("in a trusted workspace the server is found in the workspace venv before PATH", () => {
  const ws = mkdtempSync(path.join(tmpdir(), "k2ws-"));
  const bin = mkdtempSync(path.join(tmpdir(), "k2bin-"));
  const onPath = fakeExe(bin, "k2lsp");
  assert.equal(resolveServerPath("", [ws], bin, "linux", true), onPath);
  const venv = fakeExe(ws, ".venv/bin/k2lsp");
  assert.equal(resolveServerPath("", [ws], bin, "linux", true), venv);
});

test("an untrusted workspace never runs its own venv and tells the server it is untrusted", () => {
  const ws = mkdtempSync(path.join(tmpdir(), "k2ws-"));
  const bin = mkdtempSync(path.join(tmpdir(), "k2bin-"));
  fakeExe(ws, ".venv/bin/k2lsp");
  assert.throws(() => resolveServerPath("", [ws], "", "linux", false), /not found on PATH/);
  const onPath = fakeExe(bin, "k2lsp");
  assert.equal(resolveServerPath("", [ws], bin, "linux", false), onPath);
  assert.equal(buildInitializationOptions({}, false).k2lsp.workspaceTrusted, false);
  assert.equal(buildInitializationOptions({}, true).k2lsp.workspaceTrusted, true);
});

test("a bad configured path says which setting to fix", () => {
  assert.throws(() => resolveServerPath("/nonexistent/k2lsp", [], ""), /k2lsp\.serverPath "\/nonexistent\/k2lsp" is not an executable file: fix the setting or clear it/);
});

test("no server anywhere says how to install it", () => {
  const ws = mkdtempSync(path.join(tmpdir(), "k2ws-"));
  assert.throws(() => resolveServerPath("", [ws], "", "linux"), /pip install k2lsp, or set k2lsp\.serverPath/);
});

test("VS Code defaults (empty, null) are not sent; streaming is on", () => {
  const opts = buildInitializationOptions({ provider: "", model: "kimi-k2-thinking", maxSteps: null, sandbox: "none", budgetUsd: 0.5 });
  assert.deepEqual(opts, {
    k2lsp: { streamNotifications: true, reviewHunks: true, transcript: false, logReasoning: false, model: "kimi-k2-thinking", sandbox: "none", budgetUsd: 0.5 },
  });
});

test("an empty selection is not sent as a range", () => {
  const pos = { line: 3, character: 2 };
  assert.deepEqual(textArgs("file:///a.py", { start: pos, end: pos }, { question: "q" }), { question: "q", uri: "file:///a.py" });
});

test("reasoning is set apart, tool calls take one line each, runs get headers", () => {
  const r = new StreamRenderer();
  const ev = (type, fields) => ({ type, run_id: "r1", seq: 0, ts: 0, ...fields });
  let out = "";
  out += r.render(ev("run_started", { mode: "task", task: "do it" }));
  out += r.render(ev("reasoning", { text: "first\nsec" }));
  out += r.render(ev("reasoning", { text: "ond" }));
  out += r.render(ev("tool_call", { name: "read_file", args: { path: "a.py" } }));
  out += r.render(ev("tool_result", { name: "read_file", ok: false, summary: "no such file\nat all" }));
  out += r.render(ev("content", { text: "Answer." }));
  out += r.note("[delivery] applied");
  out += r.render(ev("usage", { total_prompt_tokens: 1 }));
  out += r.render(ev("run_finished", { outcome: "success", exit_code: 0, summary: "" }));
  assert.equal(
    out,
    "\n━━ K2 task · r1 · do it ━━\n  ┆ first\n  ┆ second\n→ read_file {\"path\":\"a.py\"}\n" +
      "← read_file error: no such file at all\nAnswer.\n[delivery] applied\n━━ finished: success (exit 0)\n",
  );
});

test("the status text follows step, tokens and cost, then the outcome", () => {
  const t = new RunTracker();
  const ev = (type, fields) => ({ type, run_id: "r1", seq: 0, ts: 0, ...fields });
  assert.equal(t.text(), "");
  t.update(ev("run_started", { mode: "task" }));
  t.update(ev("status", { step: 2, max_steps: 300, phase: "model" }));
  t.update(ev("usage", { total_prompt_tokens: 1500, total_completion_tokens: 500, total_cost_usd: 0.0123 }));
  assert.equal(t.text(), "K2 step 2/300 model · 2.0k tok · $0.0123");
  t.update(ev("run_finished", { outcome: "cancelled" }));
  assert.equal(t.text(), "K2 cancelled · 2.0k tok · $0.0123");
});

test("code actions get every diagnostic on the cursor's lines, whatever its source, once", () => {
  const at = (line, message, source) => ({
    range: { start: { line, character: 2 }, end: { line, character: 9 } },
    message,
    source,
  });
  const own = [at(3, "mine", "k2lsp")];
  const all = [at(3, "mine", "k2lsp"), at(3, "F821 undefined name", "ruff"), at(7, "elsewhere", "pyright")];
  const cursor = { start: { line: 3, character: 5 }, end: { line: 3, character: 5 } };
  const merged = mergeDiagnostics(own, all, cursor);
  assert.deepEqual(merged.map((d) => d.message), ["mine", "F821 undefined name"]);
  const wide = { start: { line: 0, character: 0 }, end: { line: 9, character: 0 } };
  assert.equal(mergeDiagnostics([], all, wide).length, 3);
});

test("setup results read as one line per problem; request errors are not prefixed twice", () => {
  const result = {
    ok: false,
    checks: [
      { name: "API key", status: "ok", detail: "set (from $MOONSHOT_API_KEY)", fix: "" },
      { name: "model", status: "FAIL", detail: "GET https://h/v1/models failed: HTTP 401", fix: "check the key" },
    ],
    problems: ["model: GET https://h/v1/models failed: HTTP 401 — check the key"],
  };
  assert.deepEqual(setupLines(result), [
    "[ok] API key: set (from $MOONSHOT_API_KEY)",
    "[FAIL] model: GET https://h/v1/models failed: HTTP 401",
    "       fix: check the key",
  ]);
  assert.deepEqual(setupMessage(result), {
    level: "error",
    text: "K2 setup: model: GET https://h/v1/models failed: HTTP 401 — check the key",
  });
  assert.equal(setupMessage({ ok: true, checks: result.checks.slice(0, 1), problems: [] }).level, "info");
  assert.equal(requestError("k2lsp.ask", "K2: the question is empty"), "K2: the question is empty");
  assert.equal(requestError("k2lsp.ask", "socket closed"), "K2: k2lsp.ask failed: socket closed");
});

test("review hunks follow the user's typing above them and build the proposal", () => {
  const hunk = (id, start, oldLines, newLines) => ({ id, start, oldLines, newLines, state: "pending", runId: "r", uri: "u" });
  const hunks = [hunk(1, 1, ["    return a - b"], ["    return a + b"]), hunk(2, 5, ["    return a * b"], ["    return b * a", "    # ok"])];
  // two lines typed at the top (line 0 replaced by three lines): both hunks move down by two
  shiftHunks(hunks, 0, 0, 3);
  assert.deepEqual(hunks.map((h) => h.start), [3, 7]);
  // a change inside hunk 2's lines leaves it where it is (the server checks it on accept)
  shiftHunks(hunks, 7, 7, 2);
  assert.deepEqual(hunks.map((h) => h.start), [3, 7]);
  const text = ["# a", "# b", "def add(a, b):", "    return a - b", "", "", "def mul(a, b):", "    return a * b", ""].join("\n");
  assert.equal(
    applyHunks(text, hunks.slice(0, 1).concat([hunk(2, 7, ["    return a * b"], ["    return b * a"])])),
    ["# a", "# b", "def add(a, b):", "    return a + b", "", "", "def mul(a, b):", "    return b * a", ""].join("\n"),
  );
});
