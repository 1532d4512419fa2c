"""The plan of a refactor job: what changes, the searches that find every site, how to verify.

The plan is a JSON file the user may review and edit (`k2lsp refactor --plan-only` writes it,
`--plan FILE` runs an edited one). Its sites are not stored as truth: they are found again by
running its searches on the job's run copy, so an edited search list is what the job does.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from k2lsp.errors import UsageError
from k2lsp.lspc.fallback import file_sites
from k2lsp.lspc.text import Site

DEFAULT_BATCH_FILES = 4


class Search(BaseModel):
    """One `references` search of the plan: the symbol at `path` (line optional)."""

    path: str = Field(description="File where the symbol is defined (or used).")
    symbol: str = Field(description="The symbol's current name.")
    line: int | None = Field(default=None, ge=1, description="Its line in that file.")


class PlanArgs(BaseModel):
    """Arguments of the `record_plan` tool (and the plan file's editable part)."""

    summary: str = Field(description="What changes, in a few sentences, for every batch.")
    searches: list[Search] = Field(
        description="The references searches that find every site to change (use the "
        "`references` tool first to check them)."
    )
    checks: list[str] = Field(
        default_factory=list,
        description="ast-grep patterns that must match nothing when the job is done "
        "(e.g. the old call form `old_name($$$A)`).",
    )
    verify: str = Field(default="", description="How to verify: the test command, if any.")
    batch_files: int = Field(
        default=DEFAULT_BATCH_FILES, ge=1, le=50, description="Files per batch."
    )


@dataclass
class Plan:
    """A plan with the sites its searches found and the batches made of them."""

    task: str
    args: PlanArgs
    sources: list[str] = field(default_factory=list)  # who found the sites (server / fallback)
    sites: list[Site] = field(default_factory=list)
    batches: list[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The plan file's content."""
        return {
            "task": self.task,
            **self.args.model_dump(),
            "found_by": self.sources,
            "sites": [asdict(s) for s in self.sites],
            "batches": self.batches,
        }

    @classmethod
    def from_json(cls, obj: Any, where: str = "plan") -> Plan:
        """A plan read back (sites and batches are recomputed when the job runs)."""
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: a plan is a JSON object")
        keys = set(PlanArgs.model_fields)
        try:
            args = PlanArgs.model_validate({k: v for k, v in obj.items() if k in keys})
        except ValidationError as exc:
            raise UsageError(
                f"{where}: {exc.errors()[0].get('msg')} at {exc.errors()[0].get('loc')}"
            ) from None
        plan = cls(str(obj.get("task") or ""), args)
        plan.sources = [str(s) for s in obj.get("found_by") or []]
        plan.sites = [Site(**s) for s in obj.get("sites") or [] if isinstance(s, dict)]
        plan.batches = [list(b) for b in obj.get("batches") or [] if isinstance(b, list)]
        return plan


def read_plan(path: Path) -> Plan:
    """A plan file, or UsageError saying what is wrong with it."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the plan {path}: {exc}") from None
    return Plan.from_json(obj, str(path))


def write_plan(plan: Plan, path: Path) -> None:
    """Write the plan file (atomically)."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(plan.to_json(), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def make_batches(sites: list[Site], searches: list[Search], per_batch: int) -> list[list[str]]:
    """Files with sites, in batches of `per_batch`; the files that define a searched symbol go
    last (a server rename resolves the symbol from its definition until the end)."""
    files = sorted({s.path for s in sites})
    defining = {s.path for s in searches}
    ordered = [f for f in files if f not in defining] + [f for f in files if f in defining]
    return [ordered[i : i + per_batch] for i in range(0, len(ordered), per_batch)]


def sites_by_file(sites: list[Site]) -> dict[str, list[Site]]:
    """Sites grouped per file."""
    out: dict[str, list[Site]] = defaultdict(list)
    for site in sites:
        out[site.path].append(site)
    return dict(out)


def sites_left(plan: Plan, read: Any) -> list[Site]:
    """Planned sites still spelled as before: on a planned line of a planned file, an
    identifier with a searched symbol's old name (`read(rel)` gives a file's current text)."""
    names = {s.symbol.rsplit(".", 1)[-1] for s in plan.args.searches}
    left: list[Site] = []
    for rel, planned in sites_by_file(plan.sites).items():
        lines = {s.line for s in planned}
        try:
            text = read(rel)
        except Exception:  # a planned file that is gone counts as done
            continue
        for name in names:
            left += [s for s in file_sites(rel, text, name) if s.line in lines]
    return sorted(left)
