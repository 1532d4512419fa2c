// Real-editor test: in code-server (chromium via playwright-core), "K2: Check setup" from the
// palette shows the server's setup checks (notification + Output "K2"), and a diagnostic of
// another extension (VS Code's JSON language features on a broken bad.json) gets "K2: Fix …"
// in the quick-fix menu. Env: CS_URL, CS_DATA, K2_ROOT, SHOTS, CHROMIUM, K2_SET_KEY.
// Prints one JSON line of observations; exits 1 with a reason otherwise.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { WAIT_MS, findFiles, inBrowser, openWorkbench, poll, runCommand, setApiKey } from "./lib.mjs";

const shots = process.env.SHOTS ?? "/tmp";
const log = (...a) => console.error("[e2e]", ...a);

const args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"];
await inBrowser(log, shots, async (page) => {
  writeFileSync(path.join(process.env.K2_ROOT, "bad.json"), '{\n  "name": "calc",\n  "version": ,\n}\n');
  await openWorkbench(page);
  await setApiKey(page, process.env.K2_SET_KEY);
  // "K2: Check setup": the notification and the Output lines
  const toast = await poll("the setup notification", async () => {
    await runCommand(page, "K2: Check setup");
    const t = page.locator(".notifications-toasts .notification-toast", { hasText: "K2 setup:" }).first();
    try {
      await t.waitFor({ timeout: 20000 });
      return t;
    } catch {
      return undefined;
    }
  }, WAIT_MS, 1000);
  const notification = (await toast.innerText()).replace(/\u00a0/g, " ");
  log("setup notification:", notification);
  const files = await poll("the K2 output channel log", () => {
    const found = findFiles(process.env.CS_DATA, (p) => /(^|[-/])K2\.log$/.test(p));
    const text = found.map((f) => readFileSync(f, "utf8")).join("\n");
    return text.includes("[K2 setup]") && text.includes("] sandbox:") ? text : undefined;
  }, 60000);
  // another extension's diagnostic (JSON syntax) gets "K2: Fix …"
  await page.keyboard.press("Escape");
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "bad.json" }).dblclick();
  const line = page.locator(".monaco-editor .view-line", { hasText: '"version": ,' });
  await line.waitFor({ timeout: 60000 });
  await poll("the JSON diagnostic", async () => (await page.locator(".monaco-editor .squiggly-error").count()) > 0, 60000);
  await line.click();
  await page.keyboard.press("End");
  const titles = await poll("K2: Fix in the quick-fix menu", async () => {
    await page.keyboard.press("Escape");
    await page.keyboard.press("Control+.");
    const rows = page.locator(".action-widget .monaco-list-row");
    try {
      await rows.first().waitFor({ state: "visible", timeout: 5000 });
    } catch {
      return undefined;
    }
    const all = (await rows.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
    return all.some((t) => t.startsWith("K2: Fix")) ? all : undefined;
  }, WAIT_MS, 2000);
  await page.screenshot({ path: path.join(shots, "setup-diagnostic.png") });
  console.log(JSON.stringify({ notification, output_channel: files, quick_fixes: titles }));
}, { args, pageErrors: false });
