/**
 * Heavy runs' candidates, vscode-free (docs/heavy.md): what `candidate_finished` and
 * `heavy_selected` events say about each candidate of a run, as QuickPick-ready text (test
 * evidence, diff size, cost, why chosen or left out), and a candidate's unified diff split into
 * per-file before/after texts for a side-by-side diff.
 */

type Json = Record<string, unknown>;

export interface CandidateRecord {
  candidate: string;
  outcome?: string;
  cost_usd?: number;
  summary?: string;
  diff?: string;
  evidence?: Json | null;
  [key: string]: unknown;
}

export interface HeavyRun {
  order: string[];
  byLabel: Map<string, CandidateRecord>;
  winner?: string;
  explanation: string;
  excluded: Record<string, string>;
  selected: boolean;
}

export interface CandidateItem {
  runId: string;
  label: string;
  winner: boolean;
  takeable: boolean; // not the winner and has a diff
  title: string; // "c2 ★ winner"
  description: string; // outcome and cost
  detail: string; // evidence — why
  record: CandidateRecord;
}

export interface DiffSide {
  path: string;
  before: string;
  after: string;
}

const strs = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/** One line of test evidence for a candidate record. */
export function evidenceText(c: CandidateRecord): string {
  const e = c.evidence;
  if (!e || typeof e !== "object") return `no evidence (${c.outcome ?? "?"})`;
  const parts: string[] = [];
  const targets = strs(e.targets);
  const stillRed = strs(e.still_red);
  if (targets.length === 0) parts.push("no failing test before");
  else if (e.targets_green) parts.push(`red→green ${targets.length}/${targets.length}`);
  else parts.push(`still red ${stillRed.length}/${targets.length}: ${stillRed.join(", ")}`);
  const suite = String(e.suite ?? "");
  if (!e.suite_ran) parts.push(`suite did not run${suite ? `: ${suite}` : ""}`);
  else parts.push(`${e.suite_ok ? "suite pass" : "suite FAIL"}${suite ? ` (${suite})` : ""}`);
  const touched = strs(e.touched_tests);
  if (touched.length) parts.push(`touched tests: ${touched.join(", ")}`);
  const files = strs(e.files);
  parts.push(`${Number(e.diff_lines ?? 0)} diff lines in ${files.length ? files.join(", ") : "no file"}`);
  return parts.join("; ");
}

/** Remembers the candidates of each heavy run from its stream events. */
export class CandidateStore {
  readonly runs = new Map<string, HeavyRun>();
  latest: string | undefined;

  private run(id: string): HeavyRun {
    let r = this.runs.get(id);
    if (!r) {
      r = { order: [], byLabel: new Map(), explanation: "", excluded: {}, selected: false };
      this.runs.set(id, r);
    }
    return r;
  }

  private remember(r: HeavyRun, rec: Json): void {
    const label = rec.candidate;
    if (typeof label !== "string") return;
    if (!r.byLabel.has(label)) r.order.push(label);
    r.byLabel.set(label, { ...r.byLabel.get(label), ...(rec as CandidateRecord) });
  }

  /** Record one stream event (others are ignored). */
  onEvent(ev: Json): void {
    const id = ev.run_id;
    if (typeof id !== "string") return;
    if (ev.type === "heavy_started") {
      this.runs.delete(id);
      this.run(id);
    } else if (ev.type === "candidate_finished") {
      this.remember(this.run(id), ev);
    } else if (ev.type === "heavy_selected") {
      const r = this.run(id);
      for (const rec of Array.isArray(ev.candidates) ? ev.candidates : []) {
        if (rec && typeof rec === "object") this.remember(r, rec as Json);
      }
      r.winner = typeof ev.winner === "string" ? ev.winner : undefined;
      r.explanation = typeof ev.explanation === "string" ? ev.explanation : "";
      r.excluded = ev.excluded && typeof ev.excluded === "object" ? (ev.excluded as Record<string, string>) : {};
      r.selected = true;
    } else {
      return;
    }
    this.latest = id;
  }

  /** Forget a run (its candidates are no longer kept by the server). */
  forget(id: string): void {
    this.runs.delete(id);
    if (this.latest === id) this.latest = undefined;
  }

  /** Why candidate `label` of run `r` was chosen or left out. */
  static why(r: HeavyRun, label: string): string {
    if (!r.selected) return "not decided yet";
    if (r.winner === label) return `chosen: ${r.explanation}`;
    if (r.excluded[label]) return `rejected: ${r.excluded[label]}`;
    return `not chosen${r.winner ? ` (${r.winner} won)` : ""}`;
  }

  /** The candidates of run `id` (default: the latest heavy run), in the order they finished. */
  items(id = this.latest): CandidateItem[] {
    const r = id ? this.runs.get(id) : undefined;
    if (!id || !r) return [];
    return r.order.map((label) => {
      const c = r.byLabel.get(label) as CandidateRecord;
      const winner = r.winner === label;
      return {
        runId: id,
        label,
        winner,
        takeable: !winner && r.selected && Boolean(c.diff),
        title: `${label}${winner ? " ★ winner" : ""}`,
        description: `${c.outcome ?? "?"} · $${Number(c.cost_usd ?? 0).toFixed(4)}`,
        detail: `${evidenceText(c)} — ${CandidateStore.why(r, label)}`,
        record: c,
      };
    });
  }
}

function unquote(p: string): string {
  return p.replace(/^"|"$/g, "").replace(/^[ab]\//, "");
}

/**
 * A unified diff (`--- a/x` / `+++ b/x` file headers, with or without `diff --git` lines) as
 * per-file before/after texts: the lines each hunk removes and adds with their context, hunks
 * separated by their `@@` header line on both sides. Hunk bodies are read by the line counts
 * of their header, so a removed line that starts with "-- " is not taken for a file header.
 */
export function diffSides(diff: string): DiffSide[] {
  const out: DiffSide[] = [];
  let cur: { path: string; before: string[]; after: string[]; hunks: number } | undefined;
  let oldLeft = 0;
  let newLeft = 0;
  const flush = () => {
    if (cur && cur.hunks > 0) out.push({ path: cur.path, before: cur.before.join("\n"), after: cur.after.join("\n") });
    cur = undefined;
  };
  const open = (p: string) => {
    flush();
    cur = { path: p, before: [], after: [], hunks: 0 };
  };
  for (const line of diff.split("\n")) {
    if (oldLeft > 0 || newLeft > 0) {
      if (!cur) break;
      if (line.startsWith("\\")) continue; // "\ No newline at end of file"
      const body = line.slice(1);
      if (line.startsWith("-")) {
        cur.before.push(body);
        oldLeft--;
      } else if (line.startsWith("+")) {
        cur.after.push(body);
        newLeft--;
      } else {
        cur.before.push(body);
        cur.after.push(body);
        oldLeft--;
        newLeft--;
      }
      continue;
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(line);
    if (line.startsWith("diff --git ")) {
      const m = / b\/(.*)$/.exec(line);
      open(m ? m[1] : line.slice(11));
    } else if (line.startsWith("--- ")) {
      if (!cur || cur.hunks > 0) open("");
      if (cur && !cur.path && line.slice(4) !== "/dev/null") cur.path = unquote(line.slice(4));
    } else if (line.startsWith("+++ ")) {
      if (!cur) open("");
      if (cur && line.slice(4) !== "/dev/null") cur.path = unquote(line.slice(4));
    } else if (hunk) {
      if (!cur) open("(diff)");
      if (!cur) continue;
      cur.hunks++;
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      cur.before.push(line);
      cur.after.push(line);
    }
  }
  flush();
  return out;
}
