/**
 * Review per hunk: a run's proposal (`k2lsp/review`, with the `k2lsp.preview` setting) shown in
 * the real editors: the lines it removes highlighted, the lines it adds in a hover and an inline
 * hint, and CodeLens "Accept | Reject | Diff" on every hunk (plus "Accept all | Reject all").
 * Nothing opens by itself and nothing asks: "Diff" opens the proposal beside the file in a diff
 * editor (a virtual document). The server applies an accepted hunk at once with its usual
 * checks; rejected and conflicting hunks are saved as a patch ("K2: Apply saved patch…").
 */

import * as vscode from "vscode";
import { applyHunks, type PlacedHunk, shiftHunks } from "./hunks";
import { CMD, type ReviewAnswer, type ReviewFile, type ReviewParams } from "./protocol";

export const PROPOSAL_SCHEME = "k2lsp-proposal";
type Exec = <T>(command: string, args: Record<string, unknown>) => Promise<T | undefined>;

interface Review {
  runId: string;
  files: ReviewFile[];
  hunks: PlacedHunk[]; // pending hunks of modified files, where they are now
}

export class ReviewController implements vscode.CodeLensProvider, vscode.TextDocumentContentProvider {
  private readonly reviews = new Map<string, Review>();
  private readonly lensChanged = new vscode.EventEmitter<void>();
  private readonly docChanged = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChangeCodeLenses = this.lensChanged.event;
  readonly onDidChange = this.docChanged.event;
  private readonly removed = vscode.window.createTextEditorDecorationType({
    isWholeLine: true,
    backgroundColor: new vscode.ThemeColor("diffEditor.removedLineBackground"),
    overviewRulerColor: new vscode.ThemeColor("editorOverviewRuler.deletedForeground"),
    overviewRulerLane: vscode.OverviewRulerLane.Left,
  });
  private readonly added = vscode.window.createTextEditorDecorationType({
    after: { color: new vscode.ThemeColor("editorCodeLens.foreground"), margin: "0 0 0 2em" },
  });
  lastPatch: string | undefined;
  private note: vscode.Disposable | undefined; // the status bar message of the latest review

  constructor(private readonly exec: Exec) {}

  /** Register the providers, commands and listeners. */
  register(context: vscode.ExtensionContext): void {
    const reg = (id: string, fn: (...a: never[]) => unknown) =>
      context.subscriptions.push(vscode.commands.registerCommand(id, fn));
    context.subscriptions.push(
      vscode.languages.registerCodeLensProvider({ scheme: "file" }, this),
      vscode.workspace.registerTextDocumentContentProvider(PROPOSAL_SCHEME, this),
      vscode.workspace.onDidChangeTextDocument((e) => this.onChange(e)),
      vscode.window.onDidChangeVisibleTextEditors(() => this.decorate()),
      this.removed,
      this.added,
    );
    reg("k2.acceptHunk", (runId: string, id: number) => this.decide(runId, [id], true));
    reg("k2.rejectHunk", (runId: string, id: number) => this.decide(runId, [id], false));
    reg("k2.acceptFile", (runId: string, path: string) => this.decideFile(runId, path, true));
    reg("k2.rejectFile", (runId: string, path: string) => this.decideFile(runId, path, false));
    reg("k2.acceptAll", (runId?: string) => this.decideAll(runId, true));
    reg("k2.rejectAll", (runId?: string) => this.decideAll(runId, false));
    reg("k2.showProposal", (runId?: string, uri?: string) => this.showDiff(runId, uri));
    reg("k2.applyPatch", () => this.applyPatch());
  }

  /** Any review waiting? (k2.accept / k2.reject fall back to the plain preview otherwise.) */
  pending(): boolean {
    return this.reviews.size > 0;
  }

  /** `k2lsp/review`: show the proposal; no editor opens, nothing asks. */
  onReview(p: ReviewParams): void {
    const hunks: PlacedHunk[] = [];
    const whole: string[] = [];
    for (const f of p.files) {
      for (const h of f.hunks) {
        if (h.state !== "pending") continue;
        if (f.kind === "modified") hunks.push({ ...h, runId: p.runId, uri: vscode.Uri.parse(f.uri).toString() });
        else whole.push(`${f.path} (${f.kind})`);
      }
    }
    this.reviews.set(p.runId, { runId: p.runId, files: p.files, hunks });
    const extra = whole.length ? `; whole files: ${whole.join(", ")} (Accept all / Reject all)` : "";
    this.note?.dispose();
    this.note = vscode.window.setStatusBarMessage(`K2: ${hunks.length + whole.length} change(s) to review${extra}`, 15000);
    this.refresh();
  }

  /** `k2lsp/delivery` with a final status ends the review of that run. */
  onDelivery(runId: string, status: string, patchPath?: string): void {
    if (patchPath) this.lastPatch = patchPath;
    if (status === "preview") return;
    if (this.reviews.delete(runId)) {
      if (!this.reviews.size) this.note?.dispose();
      this.refresh();
    }
  }

  provideCodeLenses(doc: vscode.TextDocument): vscode.CodeLens[] {
    const out: vscode.CodeLens[] = [];
    const key = doc.uri.toString();
    for (const rev of this.reviews.values()) {
      const mine = rev.hunks.filter((h) => h.uri === key).sort((a, b) => a.start - b.start);
      mine.forEach((h, i) => {
        const line = Math.min(h.start, Math.max(doc.lineCount - 1, 0));
        const range = new vscode.Range(line, 0, line, 0);
        const lens = (title: string, command: string, args: unknown[]) =>
          out.push(new vscode.CodeLens(range, { title, command, arguments: args }));
        lens(`K2 #${h.id}: Accept`, "k2.acceptHunk", [rev.runId, h.id]);
        lens("Reject", "k2.rejectHunk", [rev.runId, h.id]);
        lens("Diff", "k2.showProposal", [rev.runId, key]);
        const file = rev.files.find((f) => vscode.Uri.parse(f.uri).toString() === key);
        if (i === 0 && file?.group) {
          lens(`K2 ${file.group}`, "", []);
          lens("Accept file", "k2.acceptFile", [rev.runId, file.path]);
          lens("Reject file", "k2.rejectFile", [rev.runId, file.path]);
        }
        if (i === 0) {
          lens("Accept all", "k2.acceptAll", [rev.runId]);
          lens("Reject all", "k2.rejectAll", [rev.runId]);
        }
      });
    }
    return out;
  }

  /** The proposal of one file: its text now with every pending hunk applied. */
  provideTextDocumentContent(uri: vscode.Uri): string {
    const target = vscode.Uri.parse(new URLSearchParams(uri.query).get("file") ?? "").toString();
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target);
    const hunks = [...this.reviews.values()].flatMap((r) => r.hunks.filter((h) => h.uri === target));
    return applyHunks(doc?.getText() ?? "", hunks);
  }

  private refresh(): void {
    this.lensChanged.fire();
    this.decorate();
    for (const doc of vscode.workspace.textDocuments) {
      if (doc.uri.scheme === PROPOSAL_SCHEME) this.docChanged.fire(doc.uri);
    }
  }

  private decorate(): void {
    for (const ed of vscode.window.visibleTextEditors) {
      const key = ed.document.uri.toString();
      const removed: vscode.DecorationOptions[] = [];
      const added: vscode.DecorationOptions[] = [];
      for (const rev of this.reviews.values()) {
        for (const h of rev.hunks.filter((x) => x.uri === key)) {
          const proposal = new vscode.MarkdownString();
          proposal.appendMarkdown(`**K2 #${h.id}** proposes:`);
          proposal.appendCodeblock(h.newLines.join("\n") || "(the lines removed)", ed.document.languageId);
          const last = Math.min(h.start + Math.max(h.oldLines.length, 1) - 1, ed.document.lineCount - 1);
          if (h.oldLines.length) {
            removed.push({ range: new vscode.Range(h.start, 0, last, 0), hoverMessage: proposal });
          }
          const first = h.newLines[0] ?? "";
          const more = h.newLines.length > 1 ? ` (+${h.newLines.length - 1} more)` : "";
          const text = h.newLines.length ? `K2 → ${first.trim()}${more}` : "K2 → remove";
          added.push({
            range: new vscode.Range(last, Number.MAX_SAFE_INTEGER, last, Number.MAX_SAFE_INTEGER),
            hoverMessage: proposal,
            renderOptions: { after: { contentText: text } },
          });
        }
      }
      ed.setDecorations(this.removed, removed);
      ed.setDecorations(this.added, added);
    }
  }

  private onChange(e: vscode.TextDocumentChangeEvent): void {
    const key = e.document.uri.toString();
    for (const doc of vscode.workspace.textDocuments) {
      // an open proposal follows its file, during the review and after it
      if (doc.uri.scheme === PROPOSAL_SCHEME && new URLSearchParams(doc.uri.query).get("file") === key) {
        this.docChanged.fire(doc.uri);
      }
    }
    let moved = false;
    for (const rev of this.reviews.values()) {
      const mine = rev.hunks.filter((h) => h.uri === key);
      if (!mine.length) continue;
      // changes come last-first within one event; each is applied to the text before it
      for (const c of [...e.contentChanges].sort((a, b) => b.range.start.line - a.range.start.line)) {
        shiftHunks(mine, c.range.start.line, c.range.end.line, c.text.split(/\r?\n/).length);
        moved = true;
      }
    }
    if (moved) this.refresh();
  }

  private async decide(runId: string, ids: number[], accept: boolean): Promise<void> {
    const rev = this.reviews.get(runId);
    if (!rev) return;
    const answer = await this.exec<ReviewAnswer>(accept ? CMD.accept : CMD.reject, { runId, hunks: ids });
    if (!answer) return;
    this.settle(rev, answer);
  }

  /** Every pending hunk of one file (a refactor job's review decides per file). */
  private async decideFile(runId: string, path: string, accept: boolean): Promise<void> {
    const rev = this.reviews.get(runId);
    if (!rev) return;
    const answer = await this.exec<ReviewAnswer>(accept ? CMD.accept : CMD.reject, { runId, files: [path] });
    if (answer) this.settle(rev, answer);
  }

  private async decideAll(runId: string | undefined, accept: boolean): Promise<void> {
    const ids = runId ? [runId] : [...this.reviews.keys()];
    if (ids.length !== 1) {
      void vscode.window.showWarningMessage(ids.length ? "K2: several runs wait for a review: use the CodeLens of one." : "K2: no change waits for a review.");
      return;
    }
    const rev = this.reviews.get(ids[0]);
    const answer = await this.exec<ReviewAnswer>(accept ? CMD.accept : CMD.reject, { runId: ids[0] });
    if (rev && answer) this.settle(rev, answer);
  }

  private settle(rev: Review, answer: ReviewAnswer): void {
    const done = new Set([...answer.accepted, ...answer.rejected, ...answer.conflicts.map((c) => c.id)]);
    rev.hunks = rev.hunks.filter((h) => !done.has(h.id));
    if (answer.conflicts.length && answer.pending.length) {
      // (the last decision ends the review: the server's final message says it then)
      const why = answer.conflicts.map((c) => `#${c.id}: ${c.reason}`).join("; ");
      void vscode.window.showWarningMessage(`K2: not applied (your text changed there): ${why}`);
    }
    this.refresh();
  }

  /** Open the proposal of `uri` (else the active file) beside it in a diff editor. */
  private async showDiff(runId?: string, uri?: string): Promise<void> {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri.toString();
    if (!target || ![...this.reviews.values()].some((r) => (!runId || r.runId === runId) && r.hunks.some((h) => h.uri === target))) {
      void vscode.window.showInformationMessage("K2: no proposal waits for this file.");
      return;
    }
    const left = vscode.Uri.parse(target);
    const right = vscode.Uri.from({ scheme: PROPOSAL_SCHEME, path: left.path, query: new URLSearchParams({ file: target }).toString() });
    const title = `${vscode.workspace.asRelativePath(left)} ↔ K2 proposal`;
    await vscode.commands.executeCommand("vscode.diff", left, right, title, {
      viewColumn: vscode.ViewColumn.Beside,
      preserveFocus: true,
      preview: true,
    });
  }

  /** "K2: Apply saved patch…": the last saved patch, or one picked from disk. */
  private async applyPatch(): Promise<void> {
    let path = this.lastPatch;
    const choose = "Choose a patch file…";
    if (path) {
      const pick = await vscode.window.showQuickPick([path, choose], { placeHolder: "K2: apply which saved patch?" });
      if (!pick) return;
      path = pick === choose ? undefined : pick;
    }
    if (!path) {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { Patches: ["patch", "diff"] } });
      if (!picked?.length) return;
      path = picked[0].fsPath;
    }
    await this.exec(CMD.applyPatch, { path });
  }
}
