/**
 * "K2: Show heavy candidates" (docs/heavy.md): a QuickPick of the latest heavy run's candidates
 * with their test evidence, diff size, cost and why each was chosen or left out. Picking one
 * opens its diff (a virtual document diff per changed file, beside the editor); for a candidate
 * other than the winner it then offers to take it: the winner is undone (k2lsp.undo) when it is
 * applied, and the candidate is delivered instead (k2lsp.takeCandidate).
 */

import * as vscode from "vscode";
import { type CandidateItem, CandidateStore, diffSides } from "./candidates";
import { CMD } from "./protocol";

export const CANDIDATE_SCHEME = "k2lsp-candidate";
type Send = (command: string, args: Record<string, unknown>) => Promise<unknown>;

export class HeavyPicker implements vscode.TextDocumentContentProvider {
  readonly store = new CandidateStore();

  constructor(private readonly send: Send) {}

  register(context: vscode.ExtensionContext): void {
    context.subscriptions.push(
      vscode.workspace.registerTextDocumentContentProvider(CANDIDATE_SCHEME, this),
      vscode.commands.registerCommand("k2.showCandidates", (runId?: string) => this.pick(runId)),
      vscode.commands.registerCommand("k2.takeCandidate", (runId: string, label: string) => this.take(runId, label)),
    );
  }

  onEvent(ev: Record<string, unknown>): void {
    this.store.onEvent(ev);
  }

  /** One side of one file of a candidate's diff: k2lsp-candidate:/<path>?run&label&side. */
  provideTextDocumentContent(uri: vscode.Uri): string {
    const q = new URLSearchParams(uri.query);
    const item = this.store.items(q.get("run") ?? undefined).find((i) => i.label === q.get("label"));
    const side = diffSides(item?.record.diff ?? "").find((s) => s.path === q.get("file"));
    if (!side) return "(this candidate is no longer kept)";
    return q.get("side") === "before" ? side.before : side.after;
  }

  /** Open candidate `item`'s diff, one diff editor per changed file. */
  async preview(item: CandidateItem): Promise<number> {
    const sides = diffSides(item.record.diff ?? "");
    for (const s of sides) {
      const uri = (side: string) =>
        vscode.Uri.from({
          scheme: CANDIDATE_SCHEME,
          path: `/${s.path}`,
          query: new URLSearchParams({ run: item.runId, label: item.label, file: s.path, side }).toString(),
        });
      const title = `${s.path} ↔ K2 candidate ${item.label}${item.winner ? " (winner)" : ""}`;
      await vscode.commands.executeCommand("vscode.diff", uri("before"), uri("after"), title, {
        viewColumn: vscode.ViewColumn.Beside,
        preserveFocus: true,
        preview: sides.length === 1,
      });
    }
    return sides.length;
  }

  /** The QuickPick; then preview the choice and offer to take it. */
  async pick(runId?: string): Promise<void> {
    const items = this.store.items(runId);
    if (items.length === 0) {
      void vscode.window.showInformationMessage("K2: no heavy run's candidates to show.");
      return;
    }
    const picked = await vscode.window.showQuickPick(
      items.map((it) => ({ label: it.title, description: it.description, detail: it.detail, item: it })),
      { title: `K2 heavy run ${items[0].runId}: candidates`, matchOnDetail: true, ignoreFocusOut: true },
    );
    if (!picked) return;
    await this.preview(picked.item);
    if (!picked.item.takeable) return;
    const take = `Take ${picked.item.label}`;
    const answer = await vscode.window.showInformationMessage(
      `K2: take candidate ${picked.item.label} instead of the winner? ${picked.item.detail}`,
      take,
    );
    if (answer === take) await this.take(picked.item.runId, picked.item.label);
  }

  /** Deliver candidate `label` of run `runId` instead of its winner (undo the winner first). */
  async take(runId: string, label: string): Promise<unknown> {
    const args = { runId, candidate: label };
    try {
      let res: unknown;
      try {
        res = await this.send(CMD.takeCandidate, args);
      } catch (err) {
        if (!String((err as Error).message).includes("undo it first")) throw err;
        await this.send(CMD.undo, { runId });
        res = await this.send(CMD.takeCandidate, args);
      }
      this.store.forget(runId); // the server keeps no other candidate of this run
      void vscode.window.showInformationMessage(`K2: took candidate ${label} of run ${runId}.`);
      return res;
    } catch (err) {
      void vscode.window.showErrorMessage(`K2: taking candidate ${label} failed: ${(err as Error).message}`);
      return undefined;
    }
  }
}
