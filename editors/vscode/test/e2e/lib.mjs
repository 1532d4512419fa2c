// Helpers shared by the code-server end-to-end scripts (codeserver, chat, review, setup_check).
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

export const WAIT_MS = Number(process.env.K2_WAIT_MS ?? 180000);

export function findFiles(dir, pred, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) findFiles(p, pred, out);
    else if (pred(p)) out.push(p);
  }
  return out;
}

export async function poll(what, fn, ms = WAIT_MS, every = 500) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export async function runCommand(page, title) {
  // retried: the palette lists the extension's commands once the extension host has scanned it
  const row = await poll(`${title} in the palette`, async () => {
    await page.keyboard.press("Escape");
    await page.keyboard.press("F1");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible", timeout: 30000 });
    await input.fill(`>${title}`);
    const found = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
    try {
      await found.waitFor({ timeout: 5000 });
      return found;
    } catch {
      return undefined;
    }
  }, WAIT_MS, 1000);
  await row.click();
}

export const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"];

// Runs `body(page)` in a fresh headless chromium page (1500x1000); on an error, a screenshot
// failure.png in `shots`, the reason through `log` and exit code 1; the browser is closed after.
export async function inBrowser(log, shots, body, { args = CHROMIUM_ARGS, pageErrors = true } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args,
  });
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  if (pageErrors) page.on("pageerror", (e) => log("page error:", e.message));
  try {
    await body(page);
  } catch (err) {
    await page.screenshot({ path: path.join(shots, "failure.png") }).catch(() => undefined);
    log(`FAILED: ${err.message} (screenshot ${path.join(shots, "failure.png")})`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Loads code-server at $CS_URL and waits for the workbench (and, unless told not to, the explorer).
export async function openWorkbench(page, { explorer = true } = {}) {
  await page.goto(process.env.CS_URL, { timeout: 120000 });
  await page.locator(".monaco-workbench").waitFor({ timeout: 180000 });
  if (explorer) await page.locator(".explorer-folders-view, .explorer-viewlet").first().waitFor({ timeout: 120000 });
}

// "K2: Set API key" from the palette: the key goes into SecretStorage, as a user would enter it.
export async function setApiKey(page, key) {
  await runCommand(page, "K2: Set API key");
  await page.locator(".quick-input-widget input[type=password]").waitFor({ timeout: 30000 });
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await page.locator(".quick-input-widget").waitFor({ state: "hidden", timeout: 30000 });
}
