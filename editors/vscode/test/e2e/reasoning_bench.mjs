// bench/reasoning_display.py, VS Code side: in code-server (chromium via playwright-core), N
// "K2: Ask" runs one after the other; for each, the wall-clock moment the run's marker
// (MK<i>Q, the start of its reasoning) is first rendered in the "K2" Output panel.
// Env: CS_URL, K2_SET_KEY, CHROMIUM, K2_RUNS, K2_OFFSET. Prints one JSON line: {"shown": {"1": ms, ...}}.
import { chromium } from "playwright-core";

const runs = Number(process.env.K2_RUNS ?? 10);
const offset = Number(process.env.K2_OFFSET ?? 0); // marker numbers start after this
const log = (...a) => console.error("[bench]", ...a);

async function palette(page, title) {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press("Escape");
    await page.keyboard.press("F1");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible", timeout: 30000 });
    await input.fill(`>${title}`);
    const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
    try {
      await row.waitFor({ timeout: 3000 });
      await row.click();
      return;
    } catch {
      /* the extension host is still starting */
    }
  }
  throw new Error(`${title} never appeared in the palette`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  await page.goto(process.env.CS_URL, { timeout: 120000 });
  await page.locator(".monaco-workbench").waitFor({ timeout: 180000 });
  await palette(page, "K2: Set API key");
  await page.locator(".quick-input-widget input[type=password]").waitFor({ timeout: 30000 });
  await page.keyboard.type(process.env.K2_SET_KEY);
  await page.keyboard.press("Enter");
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "calc.py" }).first().dblclick();
  await page.locator(".monaco-editor .view-line", { hasText: "def add" }).first().waitFor({ timeout: 60000 });
  const shown = {};
  for (let i = 1; i <= runs; i++) {
    await palette(page, "K2: Ask");
    await page.locator(".quick-input-widget", { hasText: "Ask K2" }).waitFor({ timeout: 30000 });
    await page.keyboard.type(`question ${i}`);
    await page.keyboard.press("Enter");
    const seen = await page.waitForFunction(
      (mark) => {
        const panel = document.querySelector(".part.panel");
        return panel && panel.textContent.includes(mark) ? Date.now() : false;
      },
      `MK${offset + i}Q`,
      { polling: "raf", timeout: 120000 },
    );
    shown[String(offset + i)] = await seen.jsonValue();
    await page.waitForFunction(
      (mark) => document.querySelector(".part.panel")?.textContent.includes(mark),
      `ANSWER${offset + i}END`,
      { polling: 100, timeout: 120000 },
    );
    log(`run ${i} shown`);
  }
  console.log(JSON.stringify({ shown }));
} finally {
  await browser.close();
}
