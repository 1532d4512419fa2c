"""Shared helpers of the sandbox tests: open a real backend or skip saying why it is unavailable."""

from __future__ import annotations

from pathlib import Path

import pytest

from k2lsp.sandbox.base import Sandbox, SandboxSettings


def open_sandbox(kind: str, root: Path, settings: SandboxSettings) -> Sandbox:
    """A real sandbox of `kind`, or a skip naming why the backend is unavailable here."""
    if kind == "bwrap":
        from k2lsp.sandbox import bwrap as sandbox_bwrap

        why = sandbox_bwrap.problem()
        if why:
            pytest.skip(f"bwrap unavailable on this machine: {why}")
        return sandbox_bwrap.BwrapSandbox.create(root, settings)
    from k2lsp.sandbox import docker as sandbox_docker

    why = sandbox_docker.problem(settings.image)
    if why and "missing" in why:
        from k2lsp.sandbox.image import ensure_image

        ensure_image(settings.image)
        sandbox_docker.problem.cache_clear()
        why = sandbox_docker.problem(settings.image)
    if why:
        pytest.skip(f"docker unavailable on this machine: {why}")
    return sandbox_docker.DockerSandbox.create(root, settings)
