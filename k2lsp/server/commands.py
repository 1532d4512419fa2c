"""workspace/executeCommand handlers: start runs (answering at once with the run id) and
control them (cancel, undo, status, accept/reject a preview).

Each command takes one JSON object argument (shapes in `protocol`). Bad arguments raise a
`UsageError` whose message the editor shows; nothing is started.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from k2lsp.agent import prompts
from k2lsp.errors import K2lspError, UsageError
from k2lsp.server import protocol
from k2lsp.server.failure import command_error

if TYPE_CHECKING:
    from k2lsp.server.app import K2LanguageServer

_CONTEXT_LINES = 12
_MAX_CONTEXT_CHARS = 40_000


def as_dict(value: Any) -> Any:
    """Plain JSON form of an argument (pygls may hand over namedtuple-like objects)."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {str(k): as_dict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_dict(v) for v in value]
    return value


def first_arg(args: tuple[Any, ...]) -> dict[str, Any]:
    """The single object argument of a command (empty when none was given)."""
    if not args or args[0] is None:
        return {}
    value = as_dict(args[0])
    if not isinstance(value, dict):
        raise UsageError(f"expected one JSON object argument, got {type(value).__name__}")
    return value


class DocContext:
    """The document (and selection) a command is about, resolved against the workspace."""

    def __init__(self, ls: K2LanguageServer, args: dict[str, Any], need_doc: bool) -> None:
        self.root = ls.root()
        self.rel = ""
        self.text = ""
        self.lines: tuple[int, int] | None = None  # 1-based inclusive
        uri = args.get("uri")
        if not uri:
            if need_doc:
                raise UsageError('this command needs the document: pass {"uri": ...}')
            return
        from pygls.uris import to_fs_path

        path = Path(to_fs_path(str(uri)) or "").resolve()
        try:
            self.rel = path.relative_to(self.root).as_posix()
        except ValueError:
            raise UsageError(f"{path} is outside the workspace folder {self.root}") from None
        doc = ls.workspace.text_documents.get(str(uri))
        self.text = doc.source if doc is not None else _read(path)
        rng = args.get("range")
        if isinstance(rng, dict):
            start, end = int(rng["start"]["line"]), int(rng["end"]["line"])
            if int(rng["end"].get("character", 0)) == 0 and end > start:
                end -= 1
            self.lines = (start + 1, end + 1)

    def where(self) -> str:
        """`a.py` or `a.py lines 3-9`."""
        if self.lines is None:
            return self.rel or "the workspace"
        return f"{self.rel} lines {self.lines[0]}-{self.lines[1]}"

    def excerpt(self, pad: int = 0) -> str:
        """The selection (or whole file) as a numbered block, `pad` lines around it."""
        if not self.rel:
            return ""
        all_lines = self.text.splitlines()
        lo, hi = self.lines or (1, len(all_lines))
        lo, hi = max(1, lo - pad), min(len(all_lines), hi + pad)
        body = "\n".join(f"{n:>5}  {all_lines[n - 1]}" for n in range(lo, hi + 1))
        return f"File {self.rel} (lines {lo}-{hi}):\n```\n{body[:_MAX_CONTEXT_CHARS]}\n```\n"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _need(args: dict[str, Any], key: str, what: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f'{what}: pass {{"{key}": "..."}}')
    return value.strip()


def build(ls: K2LanguageServer, command: str, args: dict[str, Any]) -> tuple[str, str, DocContext]:
    """(task, context, document) of a run-starting command."""
    if command == protocol.CMD_ASK:
        doc = DocContext(ls, args, need_doc=False)
        return _need(args, "question", "the question is empty"), doc.excerpt(), doc
    if command == protocol.CMD_TASK:
        doc = DocContext(ls, args, need_doc=False)
        return _need(args, "task", "the task is empty"), doc.excerpt(), doc
    doc = DocContext(ls, args, need_doc=True)
    if command == protocol.CMD_FIX_DIAGNOSTIC:
        return _fix_diagnostic(args, doc)
    if command == protocol.CMD_FIX_FAILING_TEST:
        name = _need(args, "testName", "which test? the test name is missing")
        framework = str(args.get("framework") or "")
        message = str(args.get("message") or "")
        task = prompts.fix_failing_test_task(name, framework, doc.rel)
        context = doc.excerpt() + (f"\nReported failure:\n{message}\n" if message else "")
        return task, context, doc
    if command == protocol.CMD_EXPLAIN:
        return prompts.explain_task(doc.where()), doc.excerpt(3), doc
    if command == protocol.CMD_REFACTOR:
        how = str(args.get("instruction") or "")
        return prompts.refactor_task(doc.where(), how), doc.excerpt(3), doc
    if command == protocol.CMD_WRITE_TESTS:
        return prompts.write_tests_task(doc.where()), doc.excerpt(3), doc
    raise UsageError(f"unknown command {command!r}")


def _fix_diagnostic(args: dict[str, Any], doc: DocContext) -> tuple[str, str, DocContext]:
    diag = args.get("diagnostic")
    if not isinstance(diag, dict) or not str(diag.get("message") or "").strip():
        raise UsageError('the diagnostic is missing: pass {"uri": ..., "diagnostic": {...}}')
    rng = diag.get("range") or {}
    line = int((rng.get("start") or {}).get("line", 0)) + 1
    doc.lines = (line, int((rng.get("end") or {}).get("line", line - 1)) + 1)
    source = (
        f"{diag['source']}{' ' + str(diag['code']) if diag.get('code') else ''}"
        if diag.get("source")
        else ""
    )
    task = prompts.fix_diagnostic_task(doc.rel, line, source, str(diag["message"]))
    return task, doc.excerpt(_CONTEXT_LINES), doc


async def start(ls: K2LanguageServer, command: str, raw: tuple[Any, ...]) -> dict[str, Any]:
    """Start the run of a run-starting command; answers at once with `protocol.RunStarted`."""
    from k2lsp.agent.session import RunRequest
    from k2lsp.runs.runcopy import new_run_id
    from k2lsp.server.chat import conversation_of, extra_context
    from k2lsp.server.heavy import heavy_count, heavy_driver
    from k2lsp.server.runs import launch

    try:
        args = first_arg(raw)
        heavy = heavy_count(command, args)
        if heavy and args.get("conversationId"):
            raise UsageError('"heavy" starts new runs; a follow-up continues one (drop one)')
        task, context, doc = build(ls, command, args)
        run_id = new_run_id()
        while ls.runs.get(run_id) is not None:
            run_id = new_run_id()
        overlay = ls.overlay()
        request = RunRequest(
            task=task,
            repo=doc.root,
            mode=protocol.RUN_COMMANDS[command],
            context="\n\n".join(c for c in (context, extra_context(ls, args, overlay)) if c),
            overlay=overlay,
            run_id=run_id,
            focus_paths=[doc.rel] if doc.rel else [],
            conversation=conversation_of(ls, command, args),
        )
        title = _TITLES[command] + (f" (heavy ×{heavy})" if heavy else "")
        run = await launch(ls, request, title, heavy_driver(heavy) if heavy else None)
    except K2lspError as exc:  # answered as the request's error: the editor shows it once
        raise command_error(exc) from None
    transcript = run.stream.transcript if run.stream is not None else None
    return {
        "runId": run.id,
        "transcriptUri": transcript.as_uri() if transcript else "",
        "conversationId": run.conversation,
    }


_TITLES = {
    protocol.CMD_ASK: "K2: Ask",
    protocol.CMD_TASK: "K2: Task",
    protocol.CMD_FIX_DIAGNOSTIC: "K2: Fix",
    protocol.CMD_EXPLAIN: "K2: Explain",
    protocol.CMD_REFACTOR: "K2: Refactor",
    protocol.CMD_WRITE_TESTS: "K2: Write tests",
    protocol.CMD_FIX_FAILING_TEST: "K2: Fix failing test",
}


def cancel(ls: K2LanguageServer, raw: tuple[Any, ...]) -> dict[str, Any]:
    """k2lsp.cancel: cancel one run (or every active run and refactor job)."""
    from k2lsp.server import jobs

    run_id = first_arg(raw).get("runId")
    if run_id:
        run = ls.runs.get(str(run_id))
        if run is None:
            raise UsageError(f"no run {run_id!r}; k2lsp.status lists the runs")
        targets = [run]
    else:
        targets = ls.runs.active()
        stopped = jobs.cancel_all(ls)  # each stops after its current tool call, resumable
        if stopped:
            cancelled = [r.id for r in targets if ls.runs.cancel(r)]
            return {"cancelled": cancelled, "jobs": stopped}
    return {"cancelled": [r.id for r in targets if ls.runs.cancel(r)]}


async def undo(ls: K2LanguageServer, raw: tuple[Any, ...]) -> dict[str, Any]:
    """k2lsp.undo: restore what a run delivered, through the editor."""
    from k2lsp.server.delivery import undo as undo_run

    run_id = first_arg(raw).get("runId")
    run = ls.runs.get(str(run_id)) if run_id else ls.runs.last_delivered()
    try:
        if run is None or run.delivery not in ("applied", "merged") or run.undone:
            raise UsageError(f"nothing to undo{f' for run {run_id}' if run_id else ''}")
        restored = await undo_run(ls, run)
    except K2lspError as exc:
        raise command_error(exc) from None
    ls.show(f"K2: undid run {run.id} ({', '.join(restored)})", types.MessageType.Info)
    return {"runId": run.id, "restored": restored}


async def resolve_preview(
    ls: K2LanguageServer, raw: tuple[Any, ...], accept: bool
) -> dict[str, Any]:
    """k2lsp.accept / k2lsp.reject: answer a pending preview (or hunks of a review)."""
    from k2lsp.server.review import decide, pending_reviews

    args = first_arg(raw)
    run_id = args.get("runId")
    reviews = [r for k, r in pending_reviews(ls).items() if not run_id or k == run_id]
    if len(reviews) == 1:
        return await decide(ls, reviews[0], args, accept)
    if len(reviews) > 1:
        ids = ", ".join(r.run.id for r in reviews)
        raise UsageError(f'several runs wait for a review ({ids}); pass {{"runId": ...}}')
    pending = [
        r
        for r in ls.runs.runs.values()
        if r.preview is not None and not r.preview.done() and (not run_id or r.id == run_id)
    ]
    if len(pending) != 1:
        what = f"run {run_id}" if run_id else "any run"
        raise UsageError(
            f'no single preview waiting for {what}; pass {{"runId": ...}}'
            if pending
            else f"no preview is waiting for {what}"
        )
    assert pending[0].preview is not None
    pending[0].preview.set_result(accept)
    return {"runId": pending[0].id, "accepted": accept}
