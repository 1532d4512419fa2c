"""The job file (`<state>/jobs/<id>/job.json`): everything a killed job needs to resume —
its run copy, its plan, each batch's status and commit, the usage so far, the ledger."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from k2lsp.errors import UsageError


@dataclass
class BatchState:
    """One batch: its files, whether it is done, its commit and test result."""

    files: list[str]
    status: str = "pending"  # pending | done
    commit: str = ""
    tests: str = "not run"
    note: str = ""


@dataclass
class JobState:
    """A refactor job's persisted state."""

    id: str
    task: str
    repo: str
    run_dir: str = ""
    status: str = "planning"  # planning | planned | running | done | failed | cancelled
    plan: dict[str, Any] | None = None
    batches: list[BatchState] = field(default_factory=list)
    head: str = ""  # the last batch commit (the base commit before any)
    usage: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    ledger: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def folder(self) -> Path:
        """Not stored: set by `load`/`create` (see `job_dir`)."""
        return Path(self._folder)

    _folder: str = ""

    def save(self) -> None:
        """Write the job file atomically (a kill leaves the old or the new one)."""
        data = asdict(self)
        data.pop("_folder", None)
        path = self.folder / "job.json"
        tmp = path.with_suffix(".json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def files_done(self) -> int:
        """Files of finished batches."""
        return sum(len(b.files) for b in self.batches if b.status == "done")

    def next_batch(self) -> int:
        """Index of the first unfinished batch (== len(batches) when all are done)."""
        for i, batch in enumerate(self.batches):
            if batch.status != "done":
                return i
        return len(self.batches)


def job_dir(state_dir: Path, job_id: str) -> Path:
    """The folder of job `job_id`."""
    return Path(state_dir) / "jobs" / job_id


def create(state_dir: Path, job_id: str, task: str, repo: Path) -> JobState:
    """A new job folder and file."""
    folder = job_dir(state_dir, job_id)
    folder.mkdir(parents=True, exist_ok=False)
    job = JobState(job_id, task, str(repo))
    job._folder = str(folder)
    job.save()
    return job


def load(state_dir: Path, job_id: str) -> JobState:
    """The job `job_id`, or UsageError naming the jobs that exist."""
    folder = job_dir(state_dir, job_id)
    try:
        data = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = sorted(p.name for p in folder.parent.glob("*") if (p / "job.json").is_file())
        raise UsageError(
            f"no refactor job {job_id!r} in {folder.parent}; "
            f"known jobs: {', '.join(known) or 'none'}"
        ) from None
    data["batches"] = [BatchState(**b) for b in data.get("batches") or []]
    job = JobState(**data)
    job._folder = str(folder)
    return job
