// Real-editor test of review per hunk (k2lsp.preview on): code-server in chromium via
// playwright-core. Opens calc.py, starts "K2: Task" from the palette; the run proposes two hunks,
// shown as CodeLens in calc.py's editor (no other editor opens, nothing asks). Accepts hunk #1
// and rejects hunk #2 with their CodeLens, waits for calc.py to be saved with only #1, then
// applies the saved patch with "K2: Apply saved patch…". "Diff" shows the proposal beside it.
// Env: CS_URL, K2_ROOT, SHOTS, CHROMIUM. Prints one JSON line of observations; exits 1 on failure.
import { readFileSync } from "node:fs";
import path from "node:path";
import { WAIT_MS, inBrowser, openWorkbench, poll, runCommand } from "./lib.mjs";

const root = process.env.K2_ROOT;
const shots = process.env.SHOTS ?? "/tmp";
const log = (...a) => console.error("[e2e]", ...a);

const lens = (page, text) => page.locator(".codelens-decoration a", { hasText: text }).first();
const editorText = async (page) =>
  (await page.locator(".editor-group-container .monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");

await inBrowser(log, shots, async (page) => {
  await openWorkbench(page, { explorer: false });
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "calc.py" }).first().dblclick();
  await page.locator(".monaco-editor .view-line", { hasText: "return a - b" }).waitFor({ timeout: 60000 });
  log("calc.py open");
  await runCommand(page, "K2: Task");
  await page.locator(".quick-input-widget", { hasText: "may edit files" }).waitFor({ timeout: 30000 });
  await page.keyboard.type("fix calc");
  await page.keyboard.press("Enter");
  await lens(page, "K2 #1: Accept").waitFor({ timeout: WAIT_MS });
  await lens(page, "K2 #2: Accept").waitFor({ timeout: 60000 });
  const lenses = (await page.locator(".codelens-decoration a").allInnerTexts()).map((t) => t.replace(/\u00a0/g, " ").trim());
  // the user's editor is still the one in front, alone: no diff or document opened by the run
  const tabs = (await page.locator(".tabs-container .tab").allInnerTexts()).map((t) => t.replace(/\s+/g, ""));
  const activeTab = (await page.locator(".tabs-container .tab.active").first().innerText()).replace(/\s+/g, "");
  const groups = await page.locator(".editor-group-container").count();
  const textDuringReview = await editorText(page);
  await page.screenshot({ path: path.join(shots, "review.png") });
  log("lenses:", lenses.join(" | "));
  // "Diff" opens the proposal beside the file (the file's editor stays where it is)
  await lens(page, /^Diff$/).click();
  const modified = page.locator(".monaco-diff-editor .view-lines").last(); // side by side or inline
  await modified.waitFor({ timeout: 60000 });
  const proposal = await poll("the proposal in the diff editor", async () => {
    const t = (await modified.innerText()).replace(/\u00a0/g, " ");
    return t.includes("return b * a") ? t : undefined;
  }, 60000);
  const groupsWithDiff = await page.locator(".editor-group-container").count();
  await lens(page, "K2 #1: Accept").click();
  await poll("hunk #1 in the buffer", async () => (await editorText(page)).includes("return a + b"), 60000);
  await lens(page, "K2 #1: Accept").waitFor({ state: "detached", timeout: 60000 });
  log("hunk #1 accepted");
  await page.locator(".codelens-decoration a", { hasText: /^Reject$/ }).first().click();
  const calc = path.join(root, "calc.py");
  await poll("calc.py saved after the review", () => readFileSync(calc, "utf8").includes("return a + b"));
  await lens(page, "K2 #2: Accept").waitFor({ state: "detached", timeout: 60000 });
  const savedAfterReview = readFileSync(calc, "utf8");
  log("hunk #2 rejected; calc.py saved");
  await runCommand(page, "K2: Apply saved patch…");
  const item = page.locator(".quick-input-list .monaco-list-row", { hasText: ".patch" }).first();
  await item.waitFor({ timeout: 30000 });
  const patchPath = (await item.innerText()).trim();
  await item.click();
  await poll("the saved patch in the buffer", async () => (await editorText(page)).includes("return b * a"), 60000);
  const textAfterPatch = await editorText(page);
  // the proposal beside it follows the file once nothing is pending: no difference left
  const proposalAfter = await poll("the proposal to follow the file", async () => {
    const t = (await modified.innerText()).replace(/\u00a0/g, " ");
    return t.includes("return b * a") && !t.includes("return a * b") && !t.includes("return a - b") ? t : undefined;
  }, 60000);
  await page.screenshot({ path: path.join(shots, "review-done.png") });
  console.log(JSON.stringify({
    lenses, tabs, active_tab: activeTab, groups, text_during_review: textDuringReview,
    proposal, groups_with_diff: groupsWithDiff, saved_after_review: savedAfterReview, patch_path: patchPath, text_after_patch: textAfterPatch, proposal_after: proposalAfter,
  }));
});
