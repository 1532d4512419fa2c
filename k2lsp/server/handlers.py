"""LSP feature and command registration: thin handlers that parse, snapshot and delegate."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lsprotocol import types

from k2lsp.server import protocol
from k2lsp.server.app import K2LanguageServer
from k2lsp.server.commands import as_dict
from k2lsp.server.failure import command_error

log = logging.getLogger(__name__)
CommandHandler = Callable[..., Awaitable[dict[str, Any]]]


def _initialize(ls: K2LanguageServer, params: types.InitializeParams) -> None:
    # Only a snapshot here: options are validated (and problems shown) on `initialized`.
    ls.init_options = as_dict(params.initialization_options)
    ls.client_name = params.client_info.name if params.client_info else ""
    exp = as_dict(params.capabilities.experimental) if params.capabilities else None
    k2 = exp.get("k2lsp") if isinstance(exp, dict) else None
    ls.experimental_stream = isinstance(k2, dict) and k2.get("stream") is True


async def _initialized(ls: K2LanguageServer, params: types.InitializedParams) -> None:
    from k2lsp.server import warm

    # Imports (pydantic, settings layers) and the first-request warm-up run in worker
    # threads, so a request arriving meanwhile (a code action at open) never waits on them.
    ls.background(asyncio.to_thread(warm.prewarm, ls.protocol))
    before = ls._config
    await asyncio.to_thread(warm.import_modules)
    from k2lsp.server.config import parse_config

    config = parse_config(ls.init_options)
    if ls._config is before:  # else set meanwhile: from these options or newer settings
        ls.editor_config = config
    for problem in config.problems:
        ls.show(problem, types.MessageType.Warning)
    await _pull_configuration(ls)
    from k2lsp.server.workspace_trust import check

    check(ls)
    ls.background(_collect_stale_runs(ls))


async def _collect_stale_runs(ls: K2LanguageServer) -> None:
    """Remove run copies, worktrees and branches left by k2lsp processes that are gone."""
    from k2lsp.errors import K2lspError
    from k2lsp.runs.gc import collect
    from k2lsp.server.config import state_dir

    keep: dict[str, Any] = {}  # the conversations kept for follow-ups (k2lsp.runs.conversations)
    try:
        settings = ls.run_settings()
        folder = state_dir(settings)
        keep = {"keep_conversations": settings.keep_conversations}
        keep["conversation_days"] = settings.conversation_days
    except K2lspError:  # no workspace folder or a bad config: the default state folder
        from k2lsp.config.settings import default_state_dir

        folder = default_state_dir()
    try:
        done = await asyncio.to_thread(lambda: collect(folder, **keep))
    except OSError as exc:
        log.warning("could not clean up stale runs in %s: %s", folder, exc)
        return
    for line in done:
        ls.window_log_message(types.LogMessageParams(type=types.MessageType.Log, message=line))


async def _pull_configuration(ls: K2LanguageServer) -> None:
    """Ask for the `k2lsp` section and merge it over initializationOptions."""
    from k2lsp.server.config import parse_config

    caps = ls.client_capabilities
    if not (caps and caps.workspace and caps.workspace.configuration):
        return
    try:
        items = [types.ConfigurationItem(section="k2lsp")]
        values = await asyncio.wait_for(
            ls.workspace_configuration_async(types.ConfigurationParams(items=items)), 30
        )
    except Exception as exc:
        log.warning("workspace/configuration failed: %s", exc)
        return
    raw = as_dict(values[0]) if values else None
    if raw is None:
        return
    config = parse_config(raw, parse_config(ls.init_options))
    for problem in config.problems:
        ls.show(problem, types.MessageType.Warning)
    config.problems = []
    ls.editor_config = config


def _did_change_configuration(
    ls: K2LanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    from k2lsp.server.config import parse_config

    settings = as_dict(params.settings)
    if isinstance(settings, dict) and "k2lsp" in settings:
        config = parse_config(settings, parse_config(ls.init_options))
        for problem in config.problems:
            ls.show(problem, types.MessageType.Warning)
        config.problems = []
        ls.editor_config = config
    else:
        ls.background(_pull_configuration(ls))


async def _code_action(
    ls: K2LanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction]:
    from k2lsp.server.actions import code_actions

    doc = ls.workspace.text_documents.get(params.text_document.uri)
    if doc is not None:  # test detection runs in a worker, never on the event loop
        await ls.test_cache.ensure(doc.uri, doc.path, doc.version, doc.source)
    from k2lsp.server.heavy import with_heavy

    return with_heavy(
        code_actions(ls, params, ls.test_cache), ls.editor_config.options.heavy_candidates
    )


def _did_open(ls: K2LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.last_change = time.monotonic()  # landing waits for a quiet moment after it
    doc = ls.workspace.text_documents.get(params.text_document.uri)
    if doc is not None:
        ls.test_cache.warm(doc.uri, doc.path, doc.version, doc.source, delay=0.0)


def _did_change(ls: K2LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.last_change = time.monotonic()  # landing waits for a quiet moment after it
    doc = ls.workspace.text_documents.get(params.text_document.uri)
    if doc is not None:
        if doc.uri in ls.watched:  # a delivery checks every text the buffer went through
            ls.watched[doc.uri].append(doc.source)
        ls.test_cache.warm(doc.uri, doc.path, doc.version, doc.source)


def _did_close(ls: K2LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.last_change = time.monotonic()  # landing waits for a quiet moment after it
    ls.test_cache.forget(params.text_document.uri)


def _progress_cancel(ls: K2LanguageServer, params: types.WorkDoneProgressCancelParams) -> None:
    from k2lsp.server import jobs

    run = ls.runs.by_token(params.token)
    if run is not None:
        ls.runs.cancel(run)
    else:
        jobs.cancel_token(ls, params.token)  # a refactor job's progress bar


async def _shutdown(ls: K2LanguageServer, *args: Any) -> None:
    """Cancel every run and job and give them a moment to remove their run copies."""
    from k2lsp.server import jobs

    tasks = [run.task for run in ls.runs.runs.values() if run.task is not None]
    tasks += jobs.running(ls)
    jobs.cancel_all(ls)  # each is saved as cancelled and stays resumable
    for run in ls.runs.active():
        ls.runs.cancel(run)
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=20)


def _run_command(name: str) -> CommandHandler:
    async def handler(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
        from k2lsp.server.commands import start

        return await start(ls, name, args)

    return handler


def _guarded(name: str, *extra: Any) -> CommandHandler:
    """A control command (`k2lsp.server.commands.<name>`) answering a UsageError as the
    request's error (k2lsp.server.failure)."""

    async def handler(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
        from k2lsp.errors import UsageError
        from k2lsp.server import commands

        try:
            result = getattr(commands, name)(ls, args, *extra)
            return await result if asyncio.iscoroutine(result) else result
        except UsageError as exc:  # answered as the request's error: the editor shows it once
            raise command_error(exc) from None

    return handler


async def _status(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
    """k2lsp.status; called bare (from a command palette) it also shows a summary."""
    totals = ls.runs.totals()
    if not args:
        tokens = totals["promptTokens"] + totals["completionTokens"]
        ls.show(
            f"K2: {len(totals['runs'])} run(s), {totals['active']} active, {tokens:,} tokens, "
            f"${totals['costUsd']:.4f}"
        )
    return totals


async def _trust(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
    from k2lsp.errors import UsageError
    from k2lsp.server.workspace_trust import trust_command

    try:
        return await trust_command(ls, args)
    except UsageError as exc:
        raise command_error(exc) from None


async def _check_setup(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
    from k2lsp.server.setup_check import check_setup

    return await check_setup(ls, *args)


async def _take_candidate(ls: K2LanguageServer, *args: Any) -> Any:
    from k2lsp.server.heavy import take_candidate

    return await take_candidate(ls, args)


async def _apply_patch(ls: K2LanguageServer, *args: Any) -> dict[str, Any]:
    from k2lsp.server.patches import apply_patch

    return await apply_patch(ls, args)


def register(server: K2LanguageServer) -> None:
    """Attach every feature and command to `server`."""
    server.feature(types.INITIALIZE)(_initialize)
    server.feature(types.INITIALIZED)(_initialized)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(_did_change_configuration)
    server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.RefactorRewrite],
            resolve_provider=False,
        ),
    )(_code_action)
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(_did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(_did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(_did_close)
    server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)(_progress_cancel)
    server.feature(types.SHUTDOWN)(_shutdown)
    for name in protocol.RUN_COMMANDS:
        server.command(name)(_run_command(name))
    server.command(protocol.CMD_CANCEL)(_guarded("cancel"))
    server.command(protocol.CMD_UNDO)(_guarded("undo"))
    server.command(protocol.CMD_STATUS)(_status)
    server.command(protocol.CMD_ACCEPT)(_guarded("resolve_preview", True))
    server.command(protocol.CMD_REJECT)(_guarded("resolve_preview", False))
    server.command(protocol.CMD_TRUST)(_trust)
    server.command(protocol.CMD_CHECK_SETUP)(_check_setup)
    server.command(protocol.CMD_TAKE_CANDIDATE)(_take_candidate)
    server.command(protocol.CMD_APPLY_PATCH)(_apply_patch)
    from k2lsp.server.refactor_job import CMD_REFACTOR_REPOSITORY, refactor_repository

    server.command(CMD_REFACTOR_REPOSITORY)(refactor_repository)
