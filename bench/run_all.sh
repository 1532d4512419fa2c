#!/usr/bin/env bash
# Run every benchmark and print its figures. Baselines (Aider, jedi-language-server) are
# installed into their own venvs on first use; the Django sdist is downloaded from PyPI once
# (bench/corpora.py). Each benchmark alternates k2lsp with its baseline in the same run and
# prints min / median / max; they print figures and ratios and never fail the build.
# The run ends with a summary of the repo map / gate / loop / code-action goals (issue 12's
# "Done when") gathered from the sections above.
# Usage: bash bench/run_all.sh [quick|--quick]
#          quick: only the benchmarks behind the summary, with fewer rounds (both corpora and
#          the 10,000-file tree are kept: the goals are stated on them)
#        PY=/path/to/python bash bench/run_all.sh   (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "run 'bash .ci/install-and-run' or 'bash .ci/test' first (no .venv)"; exit 2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p bench/.cache
LOG=bench/.cache/run_all.log
: > "$LOG"
JLS="$PWD/bench/.cache/jls-venv"
quick=0
case "${1:-}" in quick | --quick) quick=1 ;; esac
if [ "$quick" = 0 ] && [ ! -x "$JLS/bin/jedi-language-server" ]; then
  python3 -m venv "$JLS" && "$JLS/bin/pip" install -q jedi-language-server==0.47.0 || true
fi
runs=5; maps=3; sizes=100,1000,10000; kinds=generated,real; starts=4
[ "$quick" = 1 ] && { runs=3; maps=3; sizes=10000; kinds=real; starts=3; }
start=$SECONDS

section() { printf '\n===== %s =====\n' "$*" | tee -a "$LOG"; }
run() { "$PY" "$@" 2>&1 | grep --line-buffered -v ' WARNING k2lsp\.sandbox' | tee -a "$LOG"; }
full() { [ "$quick" = 0 ]; }

full && { section "start-up: k2lsp --help"; run bench/startup_bench.py; }
if full; then
  section "LSP initialize and code actions"
  run bench/lsp_bench.py --jedi "$JLS/bin/jedi-language-server" --starts "$starts"
else
  section "first code action after opening a file"
  run bench/lsp_bench.py --first-only --starts "$starts"
fi
section "agent loop overhead per step";         run bench/loop_overhead.py
full && { section "reasoning delta path vs main";  run bench/reasoning_path.py --rounds "$runs"; }
full && { section "K2 stream parsing vs bare SDK";  run bench/model_stream.py --runs "$runs"; }
full && { section "search vs raw ripgrep";          run bench/search_bench.py --runs 10; }
full && { section "file listing (ripgrep --files) vs git"; run bench/listing_bench.py --runs 10; }
section "repo map vs Aider";                    run bench/repomap_bench.py --corpus both --runs "$maps"
section "repo map at scale";                    run bench/scale_bench.py --sizes "$sizes" --kinds "$kinds"
section "edit fidelity and the syntax gate";    run bench/edit_fidelity.py --corpus both
full && { section "parses per edit vs main";        run bench/edit_parses.py --rounds "$runs"; }
full && { section "typing while a run delivers (Neovim)"; run bench/nvim_typing.py --tries 100; }
full && { section "reasoning byte to display (Neovim, VS Code)"; run bench/reasoning_display.py --runs 30 --vscode-runs 10; }
full && { section "ACP: prompt -> first thought chunk"; run bench/acp_first_thought.py --runs 10; }
full && { section "sandbox overhead";               run bench/sandbox_overhead.py; }
full && { section "sandbox attack campaign";        run bench/attack_campaign.py; }
full && { section "writes racing a folder/symlink swap"; run bench/race_writes.py 2000; }
full && { section "self-hosted llama-server (real)"; run bench/host_bench.py; }
full && { section "refactor job: LSP vs name matching"; run bench/refactor_bench.py; }

printf '\n===== summary: repo map, gate, loop and code-action goals (from the runs above) =====\n'
# Cold map vs Aider (goal <= 0.2x on both corpora), then the 10,000-file rows (peak <= 150 MiB,
# edit+focus <= 50 ms), loop CPU per step (< 5 ms), first code action (<= 20 ms, max included),
# the gate per broken-edit kind (100% refused, 0 broken files written), identity edits (100%).
grep -E '^== |^ratio  cold|^k2lsp  cold|^aider  cold' "$LOG"
grep -E '^tree |^(real|generated) +10000 ' "$LOG"
grep -E 'bookkeeping \+ client, without' "$LOG"
grep -E '^First code action|^  once started|^  right at start-up' "$LOG"
grep -E '^\[(stdlib|django)\]|identity (replace|insert)|broken: |changed \(' "$LOG"
printf '\ntotal time %d s (log: %s)\n' "$((SECONDS - start))" "$LOG"
exit 0
