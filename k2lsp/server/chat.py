"""Conversations in the language server: the `conversationId` and `context` arguments of the
run-starting commands, and keeping a finished run's conversation for its follow-up.

    k2lsp.ask  {question, conversationId?, context?: [ContextItem...], uri?, range?}
    k2lsp.task {task,     conversationId?, context?: [ContextItem...], uri?, range?}
    -> RunStarted {runId, transcriptUri, conversationId}

Every run-starting command answers with the `conversationId` its run belongs to; passing it to
`k2lsp.ask` / `k2lsp.task` continues that conversation (history and run copy; see
`k2lsp.agent.followup`). Context items are described in `k2lsp.agent.context_items`; a buffer
item without `text` is read from the server's own view of the open document.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from k2lsp.errors import UsageError
from k2lsp.server import protocol

if TYPE_CHECKING:
    from k2lsp.agent.session import RunResult
    from k2lsp.server.app import K2LanguageServer
    from k2lsp.server.runs import Run

CONTINUABLE = (protocol.CMD_ASK, protocol.CMD_TASK)


def conversation_of(ls: K2LanguageServer, command: str, args: dict[str, Any]) -> str | None:
    """The conversation a command continues, checked now so a bad id fails the command."""
    from k2lsp.runs.conversations import load
    from k2lsp.server.config import state_dir

    conv_id = args.get("conversationId")
    if conv_id in (None, ""):
        return None
    if not isinstance(conv_id, str):
        raise UsageError('"conversationId" must be the string a run returned')
    if command not in CONTINUABLE:
        raise UsageError(
            f"{command} starts a new conversation; continue one with k2lsp.ask or k2lsp.task"
        )
    for run in ls.runs.runs.values():  # settled before its run_finished event goes out
        if run.conversation == conv_id and not run.settled:
            raise UsageError(
                f"conversation {conv_id!r} is busy: run {run.id} is still going; wait for it "
                "(or cancel it) and send the follow-up again"
            )
    load(state_dir(ls.run_settings()), conv_id, ls.root())  # unknown, collected, elsewhere
    return conv_id


def extra_context(ls: K2LanguageServer, args: dict[str, Any], overlay: dict[str, str]) -> str:
    """The context block of the command's `context` items ("" when none)."""
    from k2lsp.agent.context_items import render_context

    items = args.get("context")
    if not items:
        return ""
    if isinstance(items, list):
        items = [_with_version(ls, item) for item in items]
    return render_context(ls.root(), items, ls.run_settings(), overlay)


def _with_version(ls: K2LanguageServer, item: Any) -> Any:
    """A buffer item naming an open document gets the version the server holds."""
    if not isinstance(item, dict) or item.get("kind") != "buffer" or "version" in item:
        return item
    doc = ls.workspace.text_documents.get(str(item.get("uri") or ""))
    if doc is None or doc.version is None:
        return item
    return {**item, "version": doc.version}


def settle_run(ls: K2LanguageServer, run: Run, result: RunResult | None) -> None:
    """Keep the conversation of a finished run (or remove its run copy)."""
    from k2lsp.agent.followup import settle

    if result is None or result.run_copy is None:
        return
    into_tree = run.delivery in ("applied", "merged")
    kept = settle(
        result,
        run.request,
        ls.run_settings(),
        result.conversation,
        delivered=into_tree,
        delivery=run.delivery,
    )
    run.kept = kept is not None
