// Unit tests of the chat's vscode-free core (dist/core.mjs): message arguments with chips and
// #file: tags, the transcript model (events held until the run id is known, follow-ups keep
// the conversation id), the escaped HTML with reasoning and diffs folded, the event hub.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ChatModel, EventHub, messageArgs, renderHtml } from "../dist/core.mjs";

const editor = {
  uri: "file:///w/calc.py",
  text: "def add(a, b):\n    return a - b  # unsaved\n",
  version: 7,
  selection: { startLine: 2, endLine: 2, text: "    return a - b  # unsaved" },
  diagnostics: [{ line: 2, message: "add subtracts", severity: "error", source: "mylint" }],
};
const none = { file: false, selection: false, diagnostics: false };
const ev = (run_id, seq, type, extra = {}) => ({ run_id, seq, ts: 0, type, ...extra });

test("a message carries the chips that are on, its #file: tags and the conversation id", () => {
  const first = messageArgs("fix it #file:tests/test_calc.py", { file: true, selection: true, diagnostics: true }, editor, undefined);
  assert.equal(first.command, "k2lsp.task");
  assert.equal(first.args.task, "fix it `tests/test_calc.py`");
  assert.equal(first.args.conversationId, undefined);
  assert.deepEqual(first.args.context.map((i) => i.kind), ["file", "buffer", "selection", "diagnostics"]);
  assert.equal(first.args.context[1].version, 7);
  assert.ok(first.args.context[1].text.includes("# unsaved"));
  const next = messageArgs("/ask why?", none, editor, "conv-1");
  assert.equal(next.command, "k2lsp.ask");
  assert.deepEqual(next.args, { question: "why?", conversationId: "conv-1" });
  assert.deepEqual(messageArgs("hi", { file: true, selection: true, diagnostics: true }, undefined, undefined).args, { task: "hi" });
});

test("events that come before the run id are held, then shown; other runs go back", () => {
  const chat = new ChatModel();
  assert.equal(chat.onEvent(ev("other", 1, "run_started", { mode: "task" })), false);
  chat.addUser("fix it", ["file"]);
  assert.equal(chat.onEvent(ev("r1", 1, "run_started", { mode: "task", conversation: "c1" })), true);
  assert.equal(chat.onEvent(ev("r1", 2, "reasoning", { text: "Think" })), true);
  assert.equal(chat.onEvent(ev("other", 2, "content", { text: "not mine" })), true);
  const others = chat.adopt("r1", "c1");
  assert.deepEqual(others.map((e) => e.run_id), ["other"]);
  chat.onEvent(ev("r1", 3, "reasoning", { text: "ing." }));
  chat.onEvent(ev("r1", 4, "tool_call", { id: "t1", name: "edit_file", args: { path: "calc.py" } }));
  chat.onEvent(ev("r1", 5, "tool_result", { id: "t1", name: "edit_file", ok: true, summary: "edited", text: "" }));
  chat.onEvent(ev("r1", 6, "edit", { path: "calc.py", diff: "-a\n+b\n" }));
  chat.onEvent(ev("r1", 7, "content", { text: "Done." }));
  chat.onEvent(ev("r1", 8, "usage", { total_prompt_tokens: 100, total_completion_tokens: 20, total_cost_usd: 0.0012 }));
  assert.equal(chat.busy(), true);
  chat.onEvent(ev("r1", 9, "run_finished", { outcome: "success", exit_code: 0, summary: "" }));
  assert.equal(chat.busy(), false);
  assert.equal(chat.conversationId, "c1");
  assert.equal(chat.onEvent(ev("other", 3, "content", { text: "x" })), false);
  assert.deepEqual(chat.entries.map((e) => e.kind), ["user", "header", "reasoning", "tool", "diff", "answer", "end"]);
  assert.equal(chat.entries[2].text, "Thinking.");
  const html = renderHtml(chat.entries);
  assert.match(html, /<details class="reasoning"><summary>reasoning \(1 line\)<\/summary><pre>Thinking\.<\/pre><\/details>/);
  assert.match(html, /<details class="diff"><summary>✎ calc\.py<\/summary>/);
  assert.match(html, /success · 120 tokens · \$0\.0012/);
  assert.match(html, /edit_file .*ok: edited/);
});

test("a message that did not start says so and releases the held events", () => {
  const chat = new ChatModel();
  chat.addUser("x", []);
  chat.onEvent(ev("other", 1, "run_started", { mode: "ask" }));
  assert.equal(chat.adopt(undefined, undefined, "unknown conversation 'nope'").length, 1);
  assert.equal(chat.busy(), false);
  assert.match(renderHtml(chat.entries), /not sent: unknown conversation &#39;nope&#39;/);
});

test("transcript text is escaped", () => {
  const html = renderHtml([{ kind: "answer", text: "<img src=x onerror=alert(1)>" }, { kind: "user", text: "&", chips: ["<b>"] }]);
  assert.ok(!html.includes("<img"));
  assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;") && html.includes("&lt;b&gt;"));
});

test("the event hub replays a run's earlier events to a late listener", () => {
  const hub = new EventHub(2);
  hub.record(ev("a", 1, "run_started"));
  hub.record(ev("a", 2, "content", { text: "hi" }));
  const seen = [];
  const stop = hub.listen("a", (e) => seen.push(e.seq));
  hub.record(ev("a", 3, "run_finished"));
  stop();
  hub.record(ev("a", 4, "content"));
  assert.deepEqual(seen, [1, 2, 3]);
  hub.record(ev("b", 1, "run_started"));
  hub.record(ev("c", 1, "run_started"));
  const late = [];
  hub.listen("a", (e) => late.push(e));
  assert.equal(late.length, 0); // only the last 2 runs are kept
});
