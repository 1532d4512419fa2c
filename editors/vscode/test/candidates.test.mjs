// Unit tests of the heavy-candidates core (dist/core.mjs): the QuickPick text of each candidate
// from real-shaped candidate_finished / heavy_selected events, and a candidate's diff as
// per-file before/after texts for the diff preview.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CandidateStore, diffSides, evidenceText } from "../dist/core.mjs";

// as k2lsp writes it (no "diff --git" line), then git's form, then a removed "-- " line
const DIFF_C2 = [
  "--- a/calc.py",
  "+++ b/calc.py",
  "@@ -3,4 +3,6 @@",
  " ",
  " def add(a, b):",
  "-    return a - b",
  "+    if isinstance(a, bool):",
  "+        raise TypeError('a')",
  "+    return a + b",
  " ",
  "diff --git a/new.py b/new.py",
  "new file mode 100644",
  "--- /dev/null",
  "+++ b/new.py",
  "@@ -0,0 +1 @@",
  "+X = 1",
  "\\ No newline at end of file",
  "--- a/q.sql",
  "+++ b/q.sql",
  "@@ -1,2 +1 @@",
  "--- old comment",
  " SELECT 1;",
  "",
].join("\n");

const evidence = (over) => ({
  targets: ["tests/test_calc.py::test_add"], targets_green: true, still_red: [], touched_tests: [],
  test_problems: [], suite_ok: true, suite: "2 passed", suite_ran: true, failures: [], diff_lines: 2,
  files: ["calc.py"], ...over,
});

function heavyEvents() {
  const run_id = "r1";
  const c1 = { candidate: "c1", outcome: "success", cost_usd: 0.0123, summary: "Fixed add and sub.",
    evidence: evidence({ suite_ok: false, suite: "1 passed, 1 failed", diff_lines: 4 }) };
  const c2 = { candidate: "c2", outcome: "success", cost_usd: 0.02, summary: "Rewrote add.",
    evidence: evidence({ diff_lines: 5, files: ["calc.py", "new.py"] }) };
  const c3 = { candidate: "c3", outcome: "success", cost_usd: 0.004, summary: "add returns a + b.", evidence: evidence({}) };
  const c4 = { candidate: "c4", outcome: "max_steps", cost_usd: 0.001, summary: "", evidence: null };
  return [
    { type: "heavy_started", run_id, candidates: 4 },
    { type: "status", run_id, phase: "candidate" },
    ...[c2, c1, c3, c4].map((c) => ({ type: "candidate_finished", run_id, candidate_run_id: `x-${c.candidate}`, ...c })),
    { type: "heavy_selected", run_id, winner: "c3", winner_run_id: "x-c3", explanation: "smallest passing diff",
      candidates: [{ ...c1, diff: "d1" }, { ...c2, diff: DIFF_C2 }, { ...c3, diff: "d3" }, { ...c4, diff: "" }],
      excluded: { c1: "full suite fails: test_sub", c2: "larger diff: 5 lines changed vs 2" },
      finalists: ["c3"], ties: [], disagreements: [], cache_ratio: 0.5, cost_usd: 0.0373 },
  ];
}

test("each candidate shows its evidence, cost and why it was chosen or left out", () => {
  const store = new CandidateStore();
  for (const ev of heavyEvents()) store.onEvent(ev);
  assert.equal(store.latest, "r1");
  const items = store.items();
  assert.deepEqual(items.map((i) => i.title), ["c2", "c1", "c3 ★ winner", "c4"]);
  const [c2, c1, c3, c4] = items;
  assert.equal(c3.description, "success · $0.0040");
  assert.equal(c3.detail, "red→green 1/1; suite pass (2 passed); 2 diff lines in calc.py — chosen: smallest passing diff");
  assert.match(c1.detail, /suite FAIL \(1 passed, 1 failed\); 4 diff lines .* rejected: full suite fails: test_sub$/);
  assert.match(c2.detail, /5 diff lines in calc.py, new.py — rejected: larger diff/);
  assert.equal(c4.detail, "no evidence (max_steps) — not chosen (c3 won)");
  // only losers with changes can be taken
  assert.deepEqual(items.map((i) => i.takeable), [true, true, false, false]);
  store.forget("r1");
  assert.deepEqual(store.items(), []);
});

test("before the selection candidates are listed but cannot be taken yet", () => {
  const store = new CandidateStore();
  for (const ev of heavyEvents().slice(0, 4)) store.onEvent(ev);
  const items = store.items("r1");
  assert.deepEqual(items.map((i) => i.label), ["c2", "c1"]);
  assert.ok(items.every((i) => !i.takeable && i.detail.endsWith("not decided yet")));
});

test("evidence says when targets stay red, tests were touched or the suite did not run", () => {
  const text = evidenceText({ candidate: "c9", evidence: evidence({ targets_green: false, still_red: ["t1"],
    touched_tests: ["tests/test_calc.py"], suite_ran: false, suite: "no sandbox" }) });
  assert.equal(text, "still red 1/1: t1; suite did not run: no sandbox; touched tests: tests/test_calc.py; 2 diff lines in calc.py");
});

test("a candidate's diff becomes before/after texts per file", () => {
  const sides = diffSides(DIFF_C2);
  assert.deepEqual(sides.map((s) => s.path), ["calc.py", "new.py", "q.sql"]);
  assert.equal(sides[0].before, "@@ -3,4 +3,6 @@\n\ndef add(a, b):\n    return a - b\n");
  assert.equal(sides[0].after,
    "@@ -3,4 +3,6 @@\n\ndef add(a, b):\n    if isinstance(a, bool):\n        raise TypeError('a')\n    return a + b\n");
  assert.equal(sides[1].before, "@@ -0,0 +1 @@");
  assert.equal(sides[1].after, "@@ -0,0 +1 @@\nX = 1");
  assert.equal(sides[2].before, "@@ -1,2 +1 @@\n-- old comment\nSELECT 1;");
  assert.equal(sides[2].after, "@@ -1,2 +1 @@\nSELECT 1;");
  assert.deepEqual(diffSides(""), []);
});
