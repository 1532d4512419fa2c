#!/usr/bin/env bash
# Run every benchmark and print its figures. Baselines (Aider, jedi-language-server) are
# installed into their own venvs on first use; the Django sdist is downloaded from PyPI once
# (bench/corpora.py). Each benchmark alternates k2lsp with its baseline in the same run and
# prints min / median / max; they print figures and ratios and never fail the build.
# Usage: bash bench/run_all.sh [quick]   (quick: fewer runs, stdlib corpus only, no 10k tree)
#        PY=/path/to/python bash bench/run_all.sh   (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "run 'bash .ci/install-and-run' or 'bash .ci/test' first (no .venv)"; exit 2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p bench/.cache
JLS="$PWD/bench/.cache/jls-venv"
if [ ! -x "$JLS/bin/jedi-language-server" ]; then
  python3 -m venv "$JLS" && "$JLS/bin/pip" install -q jedi-language-server==0.47.0 || true
fi
runs=5; corpus=both; sizes=100,1000,10000
[ "${1:-}" = quick ] && { runs=3; corpus=stdlib; sizes=100,1000; }

section() { printf '\n===== %s =====\n' "$*"; }
section "start-up: k2lsp --help";               $PY bench/startup_bench.py
section "LSP initialize and code actions";      $PY bench/lsp_bench.py --jedi "$JLS/bin/jedi-language-server"
section "agent loop overhead per step";         $PY bench/loop_overhead.py
section "reasoning delta path vs main";        $PY bench/reasoning_path.py --rounds "$runs"
section "K2 stream parsing vs bare SDK";        $PY bench/model_stream.py --runs "$runs"
section "search vs raw ripgrep";                $PY bench/search_bench.py --runs 10
section "file listing (ripgrep --files) vs git"; $PY bench/listing_bench.py --runs 10
section "repo map vs Aider";                    $PY bench/repomap_bench.py --corpus "$corpus" --runs 3
section "repo map at scale";                    $PY bench/scale_bench.py --sizes "$sizes"
section "edit fidelity and the syntax gate";    $PY bench/edit_fidelity.py --corpus "$corpus"
section "parses per edit vs main";             $PY bench/edit_parses.py --rounds "$runs"
section "typing while a run delivers (Neovim)"; $PY bench/nvim_typing.py --tries 100
section "reasoning byte to display (Neovim, VS Code)"; $PY bench/reasoning_display.py --runs 30 --vscode-runs 10
section "ACP: prompt -> first thought chunk";   $PY bench/acp_first_thought.py --runs 10
section "sandbox overhead";                     $PY bench/sandbox_overhead.py
section "sandbox attack campaign";               $PY bench/attack_campaign.py
section "writes racing a folder/symlink swap";  $PY bench/race_writes.py 2000
section "self-hosted llama-server (real)";      $PY bench/host_bench.py
exit 0
