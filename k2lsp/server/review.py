"""Review per hunk: the editor shows a run's proposal inline and accepts or rejects each hunk.

For clients that opt in (`reviewHunks` with `streamNotifications`), a run with the `preview`
option ends with a `k2lsp/review` notification instead of a diff document and a question. The
run waits until every hunk is decided through `k2lsp.accept` / `k2lsp.reject`
(``{runId?, hunks?: [id...]}``; no `hunks`: every pending one). An accepted hunk is delivered
at once like any run's change: three-way merged over what the user typed meanwhile, sent as a
versioned edit, and checked to have landed; when its lines changed in the editor it becomes a
conflict instead (nothing written). When no hunk is left pending, the run reports its delivery;
rejected and conflicting hunks are saved as a patch the user can apply later
(`k2lsp.applyPatch`, `k2lsp.server.patches`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k2lsp.errors import Outcome, PathError, UsageError
from k2lsp.runs.changes import ChangeSet, FileChange
from k2lsp.server import landing, protocol
from k2lsp.server.edits import Plan, current_state, plan_delivery
from k2lsp.server.hunks import ACCEPTED, CONFLICT, PENDING, REJECTED, FileReview, Hunk, split

if TYPE_CHECKING:
    from k2lsp.agent.session import RunResult
    from k2lsp.server.app import K2LanguageServer
    from k2lsp.server.runs import Run

_MOVED = "its lines changed in the editor since the review started"


@dataclass
class Review:
    """A run waiting for its hunks to be decided."""

    run: Run
    root: Path
    files: list[FileReview]
    skipped: list[str] = field(default_factory=list)  # binary files (not deliverable by LSP)
    before: dict[str, str | None] = field(default_factory=dict)  # for k2lsp.undo
    after: dict[str, str | None] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: asyncio.Future[bool] | None = None  # False: the run was cancelled meanwhile

    def hunks(self) -> list[tuple[FileReview, Hunk]]:
        """Every hunk with its file, in order."""
        return [(f, h) for f in self.files for h in f.hunks]

    def ids(self, state: str) -> list[int]:
        """Ids of the hunks in `state`."""
        return [h.id for _, h in self.hunks() if h.state == state]


def wanted(ls: K2LanguageServer) -> bool:
    """Does the client review per hunk (rather than take a diff document and a question)?"""
    return ls.wants_stream() and ls.editor_config.options.review_hunks


def pending_reviews(ls: K2LanguageServer) -> dict[str, Review]:
    """Reviews waiting for decisions, by run id."""
    reviews: dict[str, Review] | None = getattr(ls, "reviews", None)
    if reviews is None:
        reviews = {}
        ls.reviews = reviews  # type: ignore[attr-defined]
    return reviews


def build(
    ls: K2LanguageServer, root: Path, changes: ChangeSet
) -> tuple[list[FileReview], list[str]]:
    """The review of `changes` against the editor's text now (binary paths are skipped)."""
    files: list[FileReview] = []
    skipped: list[str] = []
    next_id = 1
    for change in changes.files:
        if change.binary:
            skipped.append(change.path)
            continue
        f = _file_review(ls, root, change, next_id)
        if f.hunks:
            files.append(f)
            next_id += len(f.hunks)
    return files, skipped


def _file_review(ls: K2LanguageServer, root: Path, change: FileChange, first: int) -> FileReview:
    if change.kind == "renamed" and change.old_path:
        f = FileReview(
            change.path,
            (root / change.path).as_uri(),
            "renamed",
            change.old_text,
            change.new_text,
            old_path=change.old_path,
        )
        f.hunks = [Hunk(first, 0, [], [])]
        return f
    plan = plan_delivery(ls, root, ChangeSet([change]))  # rebased on the editor's text now
    if plan.conflicts or change.path not in plan.seen:
        why = plan.reasons.get(change.path, "it changed in the editor and could not be merged")
        return _conflicted(root, change, first, why)
    state, base, text = plan.seen[change.path], plan.before[change.path], plan.after[change.path]
    kind = "created" if base is None else "deleted" if text is None else "modified"
    f = FileReview(change.path, state.uri, kind, base, text, state.version)
    if kind == "modified":
        f.hunks = split(base or "", text or "", first)
    elif base != text:
        f.hunks = [Hunk(first, 0, [], [])]
    return f


def _conflicted(root: Path, change: FileChange, first: int, why: str) -> FileReview:
    f = FileReview(
        change.path, (root / change.path).as_uri(), change.kind, change.old_text, change.new_text
    )
    f.hunks = [Hunk(first, 0, [], [], CONFLICT, why)]
    return f


async def review(
    ls: K2LanguageServer, run: Run, result: RunResult, groups: dict[str, str] | None = None
) -> RunResult:
    """Show the proposal per hunk and wait until every hunk is decided; report the delivery.
    `groups` labels files (path -> e.g. a refactor job's batch)."""
    from k2lsp.server.delivery import report

    root = Path(run.request.repo).resolve()
    files, skipped = build(ls, root, result.changes)
    for f in files:
        f.group = (groups or {}).get(f.path, "")
    rev = Review(run, root, files, skipped, done=asyncio.get_running_loop().create_future())
    if not rev.ids(PENDING):
        rev.done.set_result(True)  # type: ignore[union-attr]
    reviews = pending_reviews(ls)
    reviews[run.id] = rev
    run.state, run.preview = "preview", rev.done  # k2lsp.cancel resolves it with False
    n = len(rev.ids(PENDING))
    report(
        ls,
        run,
        "preview",
        f"K2 proposes {n} change(s) in {', '.join(f.path for f in files)}: accept or reject "
        f"each in the editor ({protocol.CMD_ACCEPT} / {protocol.CMD_REJECT}).",
        [f.path for f in files],
    )
    ls.protocol.notify(protocol.REVIEW_NOTIFICATION, payload(rev))
    try:
        assert rev.done is not None
        decided = await rev.done
        async with rev.lock:  # an accept being delivered ends first
            cancelled = not decided and bool(rev.ids(PENDING))
            _mark([h for _, h in rev.hunks() if h.state == PENDING], REJECTED)
    finally:
        reviews.pop(run.id, None)
        run.state = "running"
    result = _finish(ls, run, result, rev)
    if cancelled:
        result.outcome = Outcome.CANCELLED
    return result


def payload(rev: Review) -> dict[str, Any]:
    """The `k2lsp/review` notification of `rev`."""
    return {"runId": rev.run.id, "title": rev.run.title, "files": [f.payload() for f in rev.files]}


async def decide(
    ls: K2LanguageServer, rev: Review, args: dict[str, Any], accept: bool
) -> dict[str, Any]:
    """k2lsp.accept / k2lsp.reject of some hunks (`hunks`) or of every pending one."""
    async with rev.lock:
        chosen = _chosen(rev, args.get("hunks"), args.get("files"))
        if accept:
            await _accept(ls, rev, chosen)
        else:
            for _, h in chosen:
                h.state = REJECTED
        if not rev.ids(PENDING) and rev.done is not None and not rev.done.done():
            rev.done.set_result(True)
    return {
        "runId": rev.run.id,
        "accepted": [h.id for _, h in chosen if h.state == ACCEPTED],
        "rejected": [h.id for _, h in chosen if h.state == REJECTED],
        "conflicts": [{"id": h.id, "reason": h.reason} for _, h in chosen if h.state == CONFLICT],
        "pending": rev.ids(PENDING),
    }


def _chosen(rev: Review, ids: Any, paths: Any = None) -> list[tuple[FileReview, Hunk]]:
    pending = [(f, h) for f, h in rev.hunks() if h.state == PENDING]
    if paths is not None:  # whole files: every pending hunk of each
        if ids is not None:
            raise UsageError("pass hunks or files, not both")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise UsageError('files must be a list of paths, e.g. {"files": ["src/a.py"]}')
        known = {f.path for f in rev.files}
        unknown = [p for p in paths if p not in known]
        if unknown:
            raise UsageError(f"run {rev.run.id} has no file {unknown[0]!r} under review")
        return [(f, h) for f, h in pending if f.path in paths]
    if ids is None:
        return pending
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise UsageError('hunks must be a list of hunk ids, e.g. {"hunks": [1, 3]}')
    by_id = {h.id: (f, h) for f, h in rev.hunks()}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise UsageError(f"run {rev.run.id} has no hunk {unknown[0]}")
    decided = [i for i in ids if by_id[i][1].state != PENDING]
    if decided:
        raise UsageError(
            f"hunk {decided[0]} of run {rev.run.id} is already {by_id[decided[0]][1].state}"
        )
    return [by_id[i] for i in dict.fromkeys(ids)]


async def _accept(ls: K2LanguageServer, rev: Review, chosen: list[tuple[FileReview, Hunk]]) -> None:
    """Deliver the chosen hunks (one edit); hunks whose lines moved become conflicts."""
    await landing.settle(ls)
    batch: list[Hunk] = []
    changes: list[FileChange] = []
    for f in dict.fromkeys(f for f, _ in chosen):
        mine = [h for g, h in chosen if g is f]
        expected = f.text_with((ACCEPTED,))
        try:
            where = f.old_path if f.kind == "renamed" and f.old_path else f.path
            now = current_state(ls, rev.root, where).text
        except PathError as exc:
            _mark(mine, CONFLICT, str(exc))
            continue
        ok = []
        for h in mine:
            h.state = "trying"
            want = f.text_with((ACCEPTED, "trying"))
            h.state = PENDING
            if not _combines(f, expected, now, want):
                _mark([h], CONFLICT, _MOVED)
                continue
            ok.append(h)
        if not ok:
            continue
        _mark(ok, "trying")
        want = f.text_with((ACCEPTED, "trying"))
        _mark(ok, PENDING)
        old_path = f.old_path if f.kind == "renamed" else None
        changes.append(FileChange(f.path, expected, want, old_path=old_path))
        batch += ok
    if not changes:
        return
    plan, why = await land(ls, rev.root, ChangeSet(changes), f"K2: accept hunks of {rev.run.id}")
    if plan is None:
        _mark(batch, CONFLICT, why)
        return
    _mark(batch, ACCEPTED)
    for path, text in plan.before.items():
        rev.before.setdefault(path, text)
    rev.after.update(plan.after)


def _combines(f: FileReview, expected: str | None, now: str | None, want: str | None) -> bool:
    """Does accepting a hunk (`expected` -> `want`) go onto the editor's text `now`? Asked of
    the one delivery planner (`k2lsp.runs.plan`); only a modified file is merged."""
    from k2lsp.runs.plan import Current, Incoming
    from k2lsp.runs.plan import plan_delivery as plan_steps

    if now in (expected, want):
        return True
    if f.kind != "modified":
        return False

    def enc(text: str | None) -> bytes | None:
        return None if text is None else text.encode("utf-8", "surrogatepass")

    plan = plan_steps([Incoming(f.path, enc(expected), enc(want))], {f.path: Current(enc(now))})
    return not plan.conflicts


def _mark(hunks: list[Hunk], state: str, reason: str = "") -> None:
    for h in hunks:
        h.state, h.reason = state, reason


async def land(
    ls: K2LanguageServer, root: Path, changes: ChangeSet, label: str
) -> tuple[Plan | None, str]:
    """Deliver `changes` through the editor the way a run's delivery is
    (`k2lsp.server.send`: planned on the editor's text, checkpointed for `k2lsp undo`, sent as
    versioned edits, planned again when the user typed meanwhile, checked to have landed):
    (the plan that landed, '') or (None, why not)."""
    from k2lsp.server.send import send

    sent = await send(ls, root, changes, label, label, ls.run_settings().state_dir)
    plan = sent.plan
    if sent.landed:
        return plan, ""
    if sent.kind == "conflict" and plan is not None:
        return None, "; ".join(f"{p}: {plan.reasons.get(p, _MOVED)}" for p in plan.conflicts)
    if sent.kind == "checkpoint":
        return None, f"could not record the undo checkpoint ({sent.reason})"
    if sent.kind == "partly":
        return None, f"the editor did not apply it to {', '.join(sent.missing)}"
    if sent.kind == "refused":
        return None, f"the editor refused the edit ({sent.reason})"
    return None, "the file kept changing in the editor"


def _finish(ls: K2LanguageServer, run: Run, result: RunResult, rev: Review) -> RunResult:
    """Report what became of the review; save the rejected and conflicting hunks as a patch."""
    from k2lsp.server.delivery import report
    from k2lsp.server.hunks import patch_of

    accepted, rejected, conflicts = (rev.ids(s) for s in (ACCEPTED, REJECTED, CONFLICT))
    touched = [f.path for f in rev.files if any(h.state == ACCEPTED for h in f.hunks)]
    run.before, run.after = rev.before, rev.after
    patch = None
    rest = patch_of(rev.files, (REJECTED, CONFLICT))
    if rest:
        from k2lsp.runs import patchfile
        from k2lsp.server.config import state_dir

        patch = patchfile.save_patch(rest, state_dir(ls.run_settings()), run.id)
    total = len(accepted) + len(rejected) + len(conflicts)
    parts = [f"K2 applied {len(accepted)} of {total} change(s)"]
    if touched:
        parts[0] += f" in {', '.join(touched)}"
    if rejected:
        parts.append(f"{len(rejected)} rejected")
    why = sorted({h.reason for _, h in rev.hunks() if h.state == CONFLICT})
    if conflicts:
        parts.append(f"{len(conflicts)} not applied ({'; '.join(why)})")
    if rev.skipped:
        parts.append(f"binary files not delivered: {', '.join(rev.skipped)}")
    msg = "; ".join(parts) + "."
    if patch is not None:
        msg += (
            f" The rest is saved in {patch}; apply it later with {protocol.CMD_APPLY_PATCH} "
            '(:K2ApplyPatch in Neovim, "K2: Apply saved patch…" in VS Code).'
        )
    status = "applied" if accepted else "conflict" if conflicts else "rejected"
    if not total:
        status, msg = "nothing", "K2's changes are already in your files; nothing to apply."
    if status == "conflict":
        result.outcome, result.summary = Outcome.EDIT_CONFLICT, msg
    paths = touched or [f.path for f in rev.files]
    report(ls, run, status, msg, paths, patch=patch)
    return result
