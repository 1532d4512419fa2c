"""What the refactor job tells K2: the planning request and each batch's bounded brief (the
plan, the ledger of finished batches and the batch's own sites — never the whole history)."""

from __future__ import annotations

import json

from k2lsp.agent.refactor.plan import Plan, sites_by_file

SYSTEM = (
    "You are K2, carrying out a repository-wide refactor with tools, on a private copy of the "
    "user's repository. Use `references` (language server, scope-aware) to find sites, "
    "`rename_symbol` for renames, `rewrite` (ast-grep; dry run first, then apply=true) for "
    "structural changes of call sites, `edit_file` for the rest, and `diagnostics` after your "
    "edits to see the errors you introduced. Change only what the task asks."
)


def planning_messages(task: str) -> list[dict[str, str]]:
    """The planning conversation's start."""
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": (
                f"Refactor request: {task}\n\nPlan it; do not edit anything yet. Find the "
                "symbol(s) involved and check with `references` that the searches find every "
                "site. Then call `record_plan` once with: a summary of the change every batch "
                "must make, the `searches` (path + symbol + line of each symbol's definition), "
                "`checks` (ast-grep patterns of the old form that must be gone at the end) and "
                "`verify` (the test command). Reply with a short note when done."
            ),
        },
    ]


def batch_messages(
    plan: Plan, ledger: list[str], index: int, files: list[str]
) -> list[dict[str, str]]:
    """Batch `index`'s conversation start: plan, ledger, this batch's files and sites."""
    grouped = sites_by_file(plan.sites)
    site_lines = [
        f"{rel}: lines {', '.join(str(s.line) for s in grouped.get(rel, []))}" for rel in files
    ]
    brief = {
        "summary": plan.args.summary,
        "searches": [s.model_dump() for s in plan.args.searches],
        "checks": plan.args.checks,
    }
    done = "\n".join(f"- {line}" for line in ledger[-20:]) or "- (this is the first batch)"
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": (
                f"Refactor request: {plan.task}\n\nThe plan (JSON):\n{json.dumps(brief)}\n\n"
                f"Done so far:\n{done}\n\nBatch {index + 1} of {len(plan.batches)}. Change ONLY "
                f"these files (pass them as `paths` to rename_symbol/rewrite):\n"
                f"BATCH_FILES: {json.dumps(files)}\nSites in them:\n"
                + "\n".join(site_lines)
                + "\n\nMake the planned change at every site of these files, run `diagnostics`, "
                "and reply with one line saying what you changed."
            ),
        },
    ]
