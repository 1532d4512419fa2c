"""`apply_patch`: apply a unified diff (one or several files), anchored on its context lines.

Hunk headers with wrong line counts (common in model output) are recounted before parsing with
unidiff; each hunk is found by its context and removed lines near the line it names, with
offsets tolerated. The patch applies all-or-nothing: any failing hunk or syntax-gate refusal
writes nothing and reports every failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from k2lsp.tools import fileops
from k2lsp.tools.base import ToolError, tool

if TYPE_CHECKING:
    from k2lsp.tools.base import ToolContext

_HUNK = re.compile(r"^@@ -?(\d+)?(?:,(\d+))? \+?(\d+)?(?:,(\d+))? @@(.*)$|^@@ *@@(.*)$")
_DEV_NULL = "/dev/null"


class ApplyPatchParams(BaseModel):
    """Arguments of apply_patch."""

    patch: str = Field(
        ...,
        description="A unified diff: `--- a/PATH` / `+++ b/PATH` headers, then "
        "`@@ -L,N +L,N @@` hunks "
        "with ' ', '-', '+' lines. Several files allowed; /dev/null creates or deletes a file.",
    )


def normalize_patch(patch: str) -> str:
    """The patch with hunk headers recounted from their lines (and empty context lines mended)."""
    lines = patch.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _HUNK.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not _ends_hunk(lines, j):
            body.append(lines[j] if lines[j] else " ")
            j += 1
        while body and body[-1] == " " and j >= len(lines):
            body.pop()  # the patch's final newline, not an empty context line
        old_n = sum(1 for b in body if b[:1] in (" ", "-"))
        new_n = sum(1 for b in body if b[:1] in (" ", "+"))
        start_old = int(match.group(1) or 1) if match.group(6) is None else 1
        start_new = int(match.group(3) or start_old) if match.group(6) is None else 1
        start_old = (
            0 if old_n == 0 and start_old == 1 and match.group(1) in (None, "0") else start_old
        )
        out.append(f"@@ -{start_old},{old_n} +{start_new},{new_n} @@")
        out.extend(body)
        i = j
    text = "\n".join(out)
    return text if text.endswith("\n") else text + "\n"


def _ends_hunk(lines: list[str], j: int) -> bool:
    line = lines[j]
    if _HUNK.match(line) or line.startswith("diff --git "):
        return True
    if line.startswith("--- ") and j + 1 < len(lines) and lines[j + 1].startswith("+++ "):
        return True
    return bool(line) and line[0] not in " -+\\"


@dataclass
class FileResult:
    """What the patch does to one file."""

    rel: str
    abs_path: Path
    old: fileops.TextFile | None  # None: created
    new_text: str | None  # None: deleted
    delete_also: tuple[Path, str] | None = None  # renamed from
    note: str = ""


def _clean(name: str, root: Path) -> str:
    """The path a header names: `a/`/`b/` prefixes dropped unless the file really lives there."""
    name = name.strip().split("\t", 1)[0]
    if name == _DEV_NULL or not name.startswith(("a/", "b/")):
        return name
    if not (root / name[2:]).exists() and (root / name).is_file():
        return name  # a --no-prefix diff of a file under a folder called a/ or b/
    return name[2:]


def _locate(lines: list[str], old: list[str], expected: int, lo: int) -> int | None:
    """Index where `old` occurs in `lines` (at or after `lo`), nearest to `expected`."""
    if not old:
        return max(lo, min(expected, len(lines)))
    n = len(old)
    for squash in (lambda s: s.rstrip("\r\n"), lambda s: s.rstrip()):
        target = [squash(x) for x in old]
        keys = [squash(x) for x in lines]
        first = target[0]
        best: int | None = None
        for pos in range(lo, len(lines) - n + 1):
            if keys[pos] == first and keys[pos : pos + n] == target:
                if best is None or abs(pos - expected) < abs(best - expected):
                    best = pos
                if pos > expected:
                    break
        if best is not None:
            return best
    return None


def apply_hunks(text: str, hunks: list[Any], rel: str) -> tuple[str, list[str], list[str]]:
    """(new text, notes, failures) of applying unidiff hunks to `text`."""
    lines = text.splitlines(keepends=True)
    notes: list[str] = []
    failures: list[str] = []
    delta = 0
    lo = 0
    for number, hunk in enumerate(hunks, 1):
        old = [ln.value for ln in hunk if ln.line_type in (" ", "-")]
        expected = (
            max(0, hunk.source_start - 1 + delta)
            if hunk.source_length
            else hunk.source_start + delta
        )
        pos = _locate(lines, old, expected, lo)
        header = f"hunk {number} (@@ -{hunk.source_start},{hunk.source_length} @@)"
        if pos is None:
            failures.append(
                f"{rel}: {header}: its context/removed lines were not found{_nearest(lines, old)}"
            )
            continue
        if pos != expected and old:
            notes.append(f"{header} applied at line {pos + 1} (offset {pos - expected:+d})")
        new = _new_lines(hunk, lines[pos : pos + len(old)], pos + len(old) >= len(lines))
        lines[pos : pos + len(old)] = new
        delta += len(new) - len(old)
        lo = pos + len(new)
    return "".join(lines), notes, failures


def _new_lines(hunk: Any, matched: list[str], at_end: bool) -> list[str]:
    out: list[str] = []
    k = 0
    items = list(hunk)
    for idx, ln in enumerate(items):
        if ln.line_type == " ":
            out.append(matched[k])
            k += 1
        elif ln.line_type == "-":
            k += 1
        elif ln.line_type == "+":
            value = ln.value if ln.value.endswith("\n") else ln.value + "\n"
            nxt = items[idx + 1] if idx + 1 < len(items) else None
            if at_end and nxt is not None and nxt.line_type == "\\":
                value = value.rstrip("\n")
            out.append(value)
    return out


def _nearest(lines: list[str], old: list[str]) -> str:
    first = next((x.strip() for x in old if x.strip()), "")
    if not first:
        return ""
    for i, line in enumerate(lines):
        if line.strip() == first:
            return (
                f"; its first line `{first[:80]}` is at line {i + 1} but the lines after it "
                "differ (read_file there and regenerate the hunk)"
            )
    return f"; `{first[:80]}` is not in the file (read_file it and regenerate the hunk)"


def _plan_file(ctx: ToolContext, pf: Any) -> tuple[FileResult | None, list[str]]:
    """What one patched file becomes, or the reasons it cannot be patched."""
    source, target = _clean(pf.source_file, ctx.root), _clean(pf.target_file, ctx.root)
    if source == _DEV_NULL and target == _DEV_NULL:
        return None, ["a file header names /dev/null on both sides"]
    rel_for = target if target != _DEV_NULL else source
    abs_path, rel = fileops.confined(ctx, rel_for)
    fileops.check_secret(ctx, rel)
    if source == _DEV_NULL:
        if abs_path.exists() and rel not in ctx.workspace.overlay:
            return None, [
                f"{rel}: the patch creates it but it already exists (patch it against its content)"
            ]
        text = "".join(ln.value for h in pf for ln in h if ln.line_type == "+")
        return FileResult(rel, abs_path, None, text, note="created"), []
    src_abs, src_rel = fileops.confined(ctx, source)
    tf = fileops.load_text(ctx, src_abs, src_rel)
    new_text, notes, failures = apply_hunks(tf.text, list(pf), src_rel)
    if failures:
        return None, failures
    if target == _DEV_NULL:
        if new_text.strip():
            return None, [
                f"{src_rel}: the patch deletes it but its removed lines do not cover the whole file"
            ]
        return FileResult(src_rel, src_abs, tf, None, note="deleted"), []
    renamed = (src_abs, src_rel) if src_rel != rel else None
    if renamed and abs_path.exists():
        return None, [f"{rel}: the patch renames {src_rel} to it but it already exists"]
    note = "; ".join(notes)
    return FileResult(rel, abs_path, tf, new_text, delete_also=renamed, note=note), []


@tool("apply_patch", ApplyPatchParams, writes="recorded", edits=True)
def apply_patch(ctx: ToolContext, args: ApplyPatchParams) -> str:
    """Apply a unified diff to one or several files. Hunks are found by their context lines near
    the line numbers given (small offsets are fine; wrong hunk counts are recounted). All or
    nothing: if any hunk does not match or a result would not parse, nothing is written and every
    failure is listed."""
    import unidiff

    if not args.patch.strip():
        raise ToolError("patch is empty; send a unified diff with ---/+++ headers and @@ hunks")
    try:
        patch_set = unidiff.PatchSet(normalize_patch(args.patch))
    except unidiff.UnidiffParseError as exc:
        raise ToolError(
            f"the patch could not be parsed ({exc}); "
            "send a unified diff with ---/+++ headers and @@ hunks"
        ) from None
    if not len(patch_set):
        raise ToolError(
            "the patch names no files; "
            "it needs `--- a/PATH` and `+++ b/PATH` lines before its hunks"
        )
    plans: list[FileResult] = []
    failures: list[str] = []
    for pf in patch_set:
        plan, errs = _plan_file(ctx, pf)
        failures.extend(errs)
        if plan is not None:
            plans.append(plan)
    failures.extend(_gate_all(ctx, plans))
    if failures:
        raise ToolError("patch not applied; nothing was written:\n- " + "\n- ".join(failures))
    return _write_all(ctx, plans)


def _gate_all(ctx: ToolContext, plans: list[FileResult]) -> list[str]:
    out = []
    for plan in plans:
        if plan.new_text is None:
            continue
        try:
            fileops.gate(ctx, plan.rel, plan.old.text if plan.old else None, plan.new_text)
        except ToolError as exc:
            out.append(str(exc))
    return out


def _write_all(ctx: ToolContext, plans: list[FileResult]) -> str:
    summary: list[str] = []
    diffs: list[str] = []
    for plan in plans:
        old_raw = plan.old.raw if plan.old else None
        if plan.new_text is None:
            fileops.remove_file(ctx.root, plan.abs_path)
            ctx.workspace.overlay.pop(plan.rel, None)
            disk = None
        else:
            disk = plan.old.to_disk(plan.new_text) if plan.old else plan.new_text
            fileops.atomic_write(ctx.root, plan.abs_path, disk)
            if plan.rel in ctx.workspace.overlay:
                ctx.workspace.overlay[plan.rel] = disk
            fileops.remember_tree(plan.rel, plan.new_text)  # parsed by the gate when it looked
        if plan.delete_also is not None:
            fileops.remove_file(ctx.root, plan.delete_also[0])
            removed = fileops.diff_of(plan.delete_also[1], old_raw, None)
            diff = removed + fileops.diff_of(plan.rel, None, disk)
            ctx.record_edit(plan.delete_also[1], removed, old=old_raw, new=None)
            plan.note = f"renamed from {plan.delete_also[1]}" + (
                f"; {plan.note}" if plan.note else ""
            )
        elif plan.old is not None and plan.new_text is not None and disk is not None:
            diff = plan.old.diff_to(plan.rel, plan.new_text, disk)
        else:
            diff = fileops.diff_of(plan.rel, old_raw, disk)
        ctx.record_edit(plan.rel, diff, old=None if plan.delete_also else old_raw, new=disk)
        diffs.append(diff)
        summary.append(f"{plan.rel}" + (f" ({plan.note})" if plan.note else ""))
    head = f"Applied patch to {len(plans)} file(s): " + ", ".join(summary) + "."
    return head + "\n" + fileops.compact("".join(diffs))
