// Helpers shared by the code-server end-to-end scripts (codeserver, chat, review, setup_check).
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";

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
