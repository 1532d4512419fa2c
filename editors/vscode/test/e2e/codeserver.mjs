// Real-editor test: drives code-server (with the k2lsp .vsix installed) in Debian's chromium via
// playwright-core. Opens test_calc.py, applies "K2: Fix failing test" from the quick-fix menu,
// waits for calc.py to be saved fixed, and reads the "K2" Output channel (panel and log file).
// Env: CS_URL, CS_DATA (code-server user-data-dir), K2_ROOT, SHOTS (screenshot dir), CHROMIUM,
// K2_SET_KEY (an API key to enter with "K2: Set API key" first).
// Then starts "K2: Task" from the palette and cancels it by clicking the status bar item.
// Prints one JSON line of observations on success; exits 1 with a reason otherwise.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { WAIT_MS, findFiles, inBrowser, openWorkbench, poll, runCommand, setApiKey } from "./lib.mjs";

const root = process.env.K2_ROOT;
const shots = process.env.SHOTS ?? "/tmp";
const log = (...a) => console.error("[e2e]", ...a);

async function openQuickFix(page) {
  // the server may still be starting: retry until K2's action is in the menu
  return poll("the K2 quick fix", async () => {
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+.");
    const item = page.locator(".action-widget .monaco-list-row", { hasText: "Fix failing test" });
    try {
      await item.first().waitFor({ state: "visible", timeout: 5000 });
      return item.first();
    } catch {
      return undefined;
    }
  }, WAIT_MS, 2000);
}

await inBrowser(log, shots, async (page) => {
  await openWorkbench(page);
  log("workbench up");
  if (process.env.K2_SET_KEY) {
    await setApiKey(page, process.env.K2_SET_KEY);
    log("API key set through the palette");
  }
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "test_calc.py" }).dblclick();
  const body = page.locator(".monaco-editor .view-line", { hasText: "assert add(2, 3) == 5" });
  await body.waitFor({ timeout: 60000 });
  await body.click(); // the cursor goes into test_add's body
  log("test_calc.py open, cursor in test_add");
  const item = await openQuickFix(page);
  log("quick fix menu shows:", (await item.innerText()).replace(/\s+/g, " "));
  await page.screenshot({ path: path.join(shots, "quickfix.png") });
  await item.click();
  const calc = path.join(root, "calc.py");
  await poll("calc.py saved with the fix", () => readFileSync(calc, "utf8").includes("return a + b"));
  log("calc.py saved");
  const panel = page.locator(".part.panel .view-lines", { hasText: "finished: success" });
  await panel.first().waitFor({ timeout: WAIT_MS });
  const panelText = (await panel.first().innerText()).replace(/\u00a0/g, " ");
  const status = page.locator(".statusbar-item", { hasText: "K2 success" });
  await status.first().waitFor({ timeout: 60000 });
  const statusBar = (await status.first().innerText()).replace(/\u00a0/g, " ").trim();
  const files = await poll("the K2 output channel log", () => {
    const found = findFiles(process.env.CS_DATA, (p) => /(^|[-/])K2\.log$/.test(p));
    return found.length ? found : undefined;
  }, 60000);
  const outputChannel = await poll("the output channel to be flushed", () => {
    const text = files.map((f) => readFileSync(f, "utf8")).join("\n");
    return text.includes("finished: success") ? text : undefined;
  }, 60000);
  // a second run from the palette ("K2: Task"), cancelled by clicking the status bar item
  await runCommand(page, "K2: Task");
  await page.locator(".quick-input-widget", { hasText: "may edit files" }).waitFor({ timeout: 30000 });
  await page.keyboard.type("Explain every function in great detail");
  await page.keyboard.press("Enter");
  const running = page.locator(".statusbar-item", { hasText: "K2 step" }).first();
  await running.waitFor({ timeout: WAIT_MS });
  await page.locator(".part.panel .view-lines", { hasText: "Pondering" }).first().waitFor({ timeout: WAIT_MS });
  log("second run streaming; clicking the status bar item");
  await running.click();
  const cancelled = page.locator(".statusbar-item", { hasText: "K2 cancelled" }).first();
  await cancelled.waitFor({ timeout: WAIT_MS });
  const statusCancelled = (await cancelled.innerText()).replace(/\u00a0/g, " ").trim();
  const channelAfter = await poll("the cancelled run in the output channel", () => {
    const text = files.map((f) => readFileSync(f, "utf8")).join("\n");
    return text.includes("finished: cancelled") ? text : undefined;
  }, 60000);
  await page.screenshot({ path: path.join(shots, "done.png") });
  console.log(
    JSON.stringify({
      output_channel: outputChannel,
      panel_text: panelText,
      status_bar: statusBar,
      status_bar_cancelled: statusCancelled,
      output_channel_after_cancel: channelAfter,
    }),
  );
});
