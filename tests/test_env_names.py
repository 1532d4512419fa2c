"""Environment variable names: `K2LSP_*` is what k2lsp itself reads; the tests, CI scripts,
benchmarks and editor test harnesses name their own inputs `K2TEST_*`, which k2lsp never reads,
so the settings loader (its `OTHER_ENV` list) knows only product names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from k2lsp.config.model import OTHER_ENV
from k2lsp.config.settings import ENV_KEYS, env_layer

ROOT = Path(__file__).resolve().parents[1]
# What ships: the package, the sandbox image's build files, the editors' plugins.
PRODUCT = ["k2lsp", "sandbox", "editors/nvim/lua", "editors/nvim/lsp", "editors/vscode/src"]
# What only tests, CI and benchmarks run.
TOOLING = [".ci", "bench", "tests", "editors/nvim/tests", "editors/vscode/test"]
TOOLING_FILES = ["editors/setup-test-deps.sh"]
# A variable being read: Python, shell, Lua, Emacs Lisp, JavaScript.
READ = re.compile(
    r"""(?:environ\.get\(|environ\[|getenv\(|getenv\s|process\.env\.|process\.env\[|\$\{?)"""
    r"""["']?(K2(?:LSP|TEST)_[A-Z0-9_]+)"""
)


def _files(*paths: str) -> dict[str, str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    texts = {}
    for name in listed:
        path = ROOT / name
        if path.is_file() and "node_modules" not in path.parts:
            try:
                texts[name] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
    return texts


def test_every_other_env_name_is_read_by_the_product() -> None:
    product = "\n".join(_files(*PRODUCT).values())
    assert product  # the listing found the sources
    unread = sorted(name for name in OTHER_ENV if not re.search(rf"\b{name}\b", product))
    assert unread == [], f"in OTHER_ENV but no product file reads them: {unread}"


def test_the_product_never_mentions_a_test_variable() -> None:
    hits = [name for name, text in _files(*PRODUCT).items() if re.search(r"K2TEST_[A-Z]", text)]
    assert hits == []


def test_tooling_reads_only_product_names_or_k2test_names() -> None:
    """A new test-only input named K2LSP_* would reach k2lsp's environment (an editor test
    spawns the server with it) and need an OTHER_ENV entry: name it K2TEST_* instead."""
    tooling = _files(*TOOLING, *TOOLING_FILES)
    reads = {(name, var) for name, text in tooling.items() for var in READ.findall(text)}
    assert any(var.startswith("K2TEST_") for _, var in reads)  # the pattern sees the reads
    stray = sorted(
        (name, var)
        for name, var in reads
        if var.startswith("K2LSP_") and var not in ENV_KEYS and var not in OTHER_ENV
    )
    assert stray == []


def test_test_variables_are_not_settings_and_draw_no_warning() -> None:
    env = {
        "K2TEST_LLAMA_SERVER": "/x/llama-server",
        "K2TEST_CI_CACHE": "/var/cache/k2lsp-ci",
        "K2LSP_LSP_LOG": "/tmp/lsp.log",
        "K2LSP_MODLE": "x",
    }
    layer, warnings = env_layer(env)
    assert layer.values == {}
    assert warnings == [
        "environment: unknown variable 'K2LSP_MODLE' ignored (did you mean 'K2LSP_MODEL'?)"
    ]
