/** Run state from k2lsp/stream events and the status bar text built from it (pure). */

import type { K2Event } from "./protocol";

export interface RunState {
  id: string;
  mode: string;
  step: number;
  maxSteps: number;
  phase: string;
  tokens: number;
  costUsd: number;
  outcome?: string;
}

function fmtTokens(n: number): string {
  return n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

/** Tracks every run seen on the stream. */
export class RunTracker {
  readonly runs = new Map<string, RunState>();
  private order: string[] = [];

  private get(id: string): RunState {
    let r = this.runs.get(id);
    if (!r) {
      r = { id, mode: "", step: 0, maxSteps: 0, phase: "", tokens: 0, costUsd: 0 };
      this.runs.set(id, r);
      this.order.push(id);
    }
    return r;
  }

  /** Update from one event. */
  update(ev: K2Event): void {
    const r = this.get(ev.run_id);
    switch (ev.type) {
      case "run_started":
        r.mode = String(ev.mode ?? "");
        break;
      case "status":
        r.step = Number(ev.step ?? r.step);
        r.maxSteps = Number(ev.max_steps ?? r.maxSteps);
        r.phase = String(ev.phase ?? r.phase);
        break;
      case "usage":
        r.tokens = Number(ev.total_prompt_tokens ?? 0) + Number(ev.total_completion_tokens ?? 0);
        r.costUsd = Number(ev.total_cost_usd ?? r.costUsd);
        break;
      case "tool_call":
        r.phase = String(ev.name ?? r.phase);
        break;
      case "run_finished":
        r.outcome = String(ev.outcome ?? "?");
        r.phase = "finished";
        break;
    }
  }

  /** Runs still going. */
  active(): RunState[] {
    return this.order.map((id) => this.runs.get(id)!).filter((r) => r.outcome === undefined);
  }

  /** The status bar text, or "" before any run. */
  text(): string {
    const active = this.active();
    const last = this.order.length ? this.runs.get(this.order[this.order.length - 1]) : undefined;
    const r = active[active.length - 1] ?? last;
    if (!r) return "";
    const cost = `$${r.costUsd.toFixed(4)}`;
    if (r.outcome === undefined) {
      const step = r.maxSteps > 0 ? `${r.step}/${r.maxSteps}` : String(r.step);
      const more = active.length > 1 ? ` (+${active.length - 1})` : "";
      return `K2 step ${step} ${r.phase} · ${fmtTokens(r.tokens)} tok · ${cost}${more}`;
    }
    return `K2 ${r.outcome} · ${fmtTokens(r.tokens)} tok · ${cost}`;
  }
}
