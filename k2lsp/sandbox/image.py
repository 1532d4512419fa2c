"""`k2lsp sandbox build`: build (or reuse) the docker image the sandbox runs commands in.

With a reachable registry it builds `sandbox/Dockerfile` (tag `k2lsp-sandbox:docker-<hash>`);
without one (air-gapped machines, CI) it runs `sandbox/build-offline.sh`, which makes an
equivalent image with debootstrap + `docker import` (tag `k2lsp-sandbox:offline-<hash>`). Both
are cached by a hash of their definition: when the tagged image exists, the build is a fast
no-op that only points the requested tag (default `k2lsp-sandbox:latest`) at it.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from k2lsp.errors import SandboxUnavailable, UsageError

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "k2lsp-sandbox:latest"
BASE_IMAGE = "python:3.12-slim"


def sandbox_dir() -> Path:
    """The `sandbox/` folder holding the image definitions."""
    here = Path(__file__).resolve().parents[2] / "sandbox"
    if not (here / "Dockerfile").is_file():
        raise UsageError(
            f"cannot find the sandbox image definitions (looked in {here}); run "
            "from a k2lsp source checkout or build an image yourself and set sandbox_image"
        )
    return here


def dockerfile_hash(folder: Path) -> str:
    """Hash of the Dockerfile definition (16 hex digits)."""
    return hashlib.sha256((folder / "Dockerfile").read_bytes()).hexdigest()[:16]


def _client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(
            f"no docker daemon answers ({str(exc)[:160]}); install docker and "
            "start dockerd, or use the bwrap sandbox"
        ) from None
    return client


def _exists(client: Any, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def registry_reachable(client: Any) -> bool:
    """Whether the registry holding the base image answers (a quick metadata query)."""
    try:
        client.api.inspect_distribution(BASE_IMAGE)
    except Exception as exc:  # any failure means: build offline
        log.info("registry not reachable: %s", str(exc)[:200])
        return False
    return True


def ensure_image(image: str = DEFAULT_IMAGE, *, mode: str = "auto", force: bool = False) -> str:
    """Make sure `image` exists, building it if its definition changed; returns how it was made."""
    folder = sandbox_dir()
    client = _client()
    cached = f"k2lsp-sandbox:docker-{dockerfile_hash(folder)}"
    if mode in ("auto", "dockerfile") and not force and _exists(client, cached):
        client.images.get(cached).tag(image)
        return f"up to date: {image} = {cached}"
    if mode == "dockerfile" or (mode == "auto" and registry_reachable(client)):
        return _build_dockerfile(client, folder, cached, image)
    return _build_offline(folder, image, force)


def _build_dockerfile(client: Any, folder: Path, cached: str, image: str) -> str:
    start = time.monotonic()
    try:
        built, _ = client.images.build(
            path=str(folder),
            tag=cached,
            rm=True,
            pull=False,
            labels={"org.k2lsp.definition": cached.split(":")[1]},
        )
    except Exception as exc:
        raise SandboxUnavailable(
            f"docker build of {folder / 'Dockerfile'} failed: {str(exc)[:300]}"
        ) from None
    built.tag(image)
    return (
        f"built {cached} (tagged {image}) from the Dockerfile in {time.monotonic() - start:.0f} s"
    )


def _build_offline(folder: Path, image: str, force: bool) -> str:
    script = folder / "build-offline.sh"
    argv = ["sh", str(script), "--tag", image] + (["--force"] if force else [])
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SandboxUnavailable(f"offline image build failed:\n{proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"built {image}"


def cli(argv: list[str]) -> int:
    """Entry of `k2lsp sandbox build`."""
    parser = argparse.ArgumentParser(prog="k2lsp sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action")
    build = sub.add_parser("build", help="build the sandbox image (no-op when up to date)")
    build.add_argument("--image", default=DEFAULT_IMAGE, help="tag to give the image")
    build.add_argument(
        "--mode",
        choices=("auto", "dockerfile", "offline"),
        default="auto",
        help="auto: the Dockerfile when a registry answers, else offline",
    )
    build.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    if args.action != "build":
        parser.print_help(sys.stderr)
        return 2
    try:
        print(ensure_image(args.image, mode=args.mode, force=args.force))
    except (SandboxUnavailable, UsageError) as exc:
        print(f"k2lsp sandbox build: {exc}", file=sys.stderr)
        return exc.outcome.exit_code
    return 0
