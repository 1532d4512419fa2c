// Real-editor test of the K2 chat panel (the webview the extension opens where the host's chat
// view is off, as in code-server): open calc.py and type in it (unsaved), "K2: Open chat" from
// the palette, send a question with the "current file" chip on, then a follow-up task in the
// same conversation; wait for both answers and for calc.py to be saved with the fix.
// Env: CS_URL, K2_ROOT, SHOTS, CHROMIUM. Prints one JSON line of observations on success.
import { readFileSync } from "node:fs";
import path from "node:path";
import { inBrowser, openWorkbench, poll, runCommand } from "./lib.mjs";

const root = process.env.K2_ROOT;
const shots = process.env.SHOTS ?? "/tmp";
const log = (...a) => console.error("[e2e-chat]", ...a);

await inBrowser(log, shots, async (page) => {
  await openWorkbench(page);
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: "calc.py" }).first().dblclick();
  const first = page.locator(".monaco-editor .view-line", { hasText: "def add(a, b):" });
  await first.waitFor({ timeout: 60000 });
  await first.click();
  await page.keyboard.press("Home");
  await page.keyboard.type("# typed in the editor\n");
  log("calc.py open and edited (unsaved)");
  await runCommand(page, "K2: Open chat");
  const frame = page.frameLocator("iframe.webview").frameLocator("iframe#active-frame");
  const box = frame.locator("#message");
  await box.waitFor({ timeout: 60000 });
  log("chat panel open");
  await page.mouse.move(900, 700); // away from the editor toolbar's hover tooltips
  await box.click();
  await frame.locator("#chip-file").check();
  await box.fill("/ask what does add do?");
  await frame.locator("#send").click();
  const transcript = frame.locator("#transcript");
  await poll("the first answer", async () => (await transcript.innerText()).includes("add subtracts b from a."));
  await poll("the first run to end", async () => (await frame.locator(".end").count()) >= 1);
  const conversation1 = (await frame.locator("#conversation").innerText()).trim();
  log("first answer shown;", conversation1);
  await box.fill("now fix it");
  await frame.locator("#send").click();
  await poll("the second answer", async () => (await transcript.innerText()).includes("Fixed: add adds now."));
  await poll("the second run to end", async () => (await frame.locator(".end").count()) >= 2);
  const conversation2 = (await frame.locator("#conversation").innerText()).trim();
  const calc = path.join(root, "calc.py");
  await poll("calc.py saved with the fix", () => readFileSync(calc, "utf8").includes("return a + b"));
  await page.screenshot({ path: path.join(shots, "chat.png") });
  console.log(JSON.stringify({
    transcript: await transcript.innerText(),
    html: await transcript.innerHTML(),
    open_details: await frame.locator("#transcript details[open]").count(),
    details: await frame.locator("#transcript details").count(),
    ends: await frame.locator(".end").allInnerTexts(),
    conversation_1: conversation1,
    conversation_2: conversation2,
    calc: readFileSync(calc, "utf8"),
  }));
});
