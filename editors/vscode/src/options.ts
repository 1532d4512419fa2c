/** Server start-up: locating the k2lsp executable and building initializationOptions. */

import * as fs from "node:fs";
import * as path from "node:path";

/** The k2lsp.* settings that are forwarded to the server (Settings names, camelCase). */
export const FORWARDED_SETTINGS = [
  "provider",
  "baseUrl",
  "model",
  "maxSteps",
  "maxTokens",
  "budgetUsd",
  "timeoutS",
  "sandbox",
  "testCommand",
  "preview",
  "heavyCandidates",
] as const;

/**
 * initializationOptions for the server: the forwarded settings that are set, plus streaming on.
 * `trusted` (vscode.workspace.isTrusted) is passed as `workspaceTrusted`: the server then lets the
 * repository's own k2lsp.toml set the key/sandbox settings only in a trusted workspace.
 */
export function buildInitializationOptions(
  settings: Record<string, unknown>,
  trusted?: boolean,
): { k2lsp: Record<string, unknown> } {
  const k2lsp: Record<string, unknown> = {
    streamNotifications: true,
    reviewHunks: true, // with the preview setting: review per hunk (src/review.ts)
    transcript: false,
    logReasoning: false,
  };
  if (trusted !== undefined) k2lsp.workspaceTrusted = trusted;
  for (const key of FORWARDED_SETTINGS) {
    const value = settings[key];
    if (value === undefined || value === null || value === "") continue;
    k2lsp[key] = value;
  }
  return { k2lsp };
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Find `name` on a PATH string. */
export function which(name: string, pathEnv: string | undefined, platform = process.platform): string | undefined {
  const exts = platform === "win32" ? [".exe", ".cmd", ""] : [""];
  for (const dir of (pathEnv ?? "").split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * The k2lsp executable: the configured path, else (only in a trusted workspace: it is a program
 * the repository ships) a workspace venv (.venv, venv), else PATH.
 * Throws an Error that says what to do when none is found.
 */
export function resolveServerPath(
  configured: string,
  workspaceFolders: string[],
  pathEnv: string | undefined,
  platform = process.platform,
  trusted = false,
): string {
  if (configured) {
    if (isExecutable(configured)) return configured;
    throw new Error(`k2lsp.serverPath "${configured}" is not an executable file: fix the setting or clear it.`);
  }
  const bin = platform === "win32" ? path.join("Scripts", "k2lsp.exe") : path.join("bin", "k2lsp");
  for (const folder of trusted ? workspaceFolders : []) {
    for (const venv of [".venv", "venv"]) {
      const candidate = path.join(folder, venv, bin);
      if (isExecutable(candidate)) return candidate;
    }
  }
  const found = which("k2lsp", pathEnv, platform);
  if (found) return found;
  throw new Error(
    "k2lsp was not found on PATH (nor, in a trusted workspace, in .venv/bin/k2lsp): " +
      "pip install k2lsp, or set k2lsp.serverPath.",
  );
}
