"""The sandbox attack campaign (issue 10): every attack of tests/sandbox_attacks.py against each
sandbox backend, as root and as an ordinary user; prints tried / contained / failed per row and
the totals (goal: 0 failed).

    .venv/bin/python bench/attack_campaign.py [--rounds 1]

As root it runs each attack as root and, through `runuser`, as the ordinary user `k2user` (with
the virtualenv .ci/test makes in /var/cache/k2lsp-ci/user-venv). As an ordinary user it runs the
"as user" rows only. Unavailable backends are listed as skipped, never as contained.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sandbox_attacks import ATTACKS, SLUGS, Outcome, run_as_user, run_attack


def _row(attack: str, kind: str, who: str, outcomes: list[Outcome]) -> list[str]:
    tried = [o for o in outcomes if not o.skipped]
    contained = sum(o.contained for o in tried)
    note = (
        outcomes[0].skipped
        if not tried
        else next((o.detail for o in tried if not o.contained), tried[-1].detail)
    )
    return [attack, kind, who, str(len(tried)), str(contained), str(len(tried) - contained), note]


def main() -> None:
    """Run the campaign and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="tries per attack and row")
    args = parser.parse_args()
    by_name = {name: slug for slug, name in SLUGS.items()}
    whos = ["root", "user"] if os.geteuid() == 0 else ["user"]
    rows = []
    for attack in ATTACKS:
        slug = by_name[attack]
        for kind in ("bwrap", "docker"):
            for who in whos:
                run = run_as_user if who == "user" and os.geteuid() == 0 else run_attack
                outcomes = [run(slug, kind) for _ in range(args.rounds)]
                rows.append(_row(attack, kind, who, outcomes))
                print(" | ".join(rows[-1][:6]), file=sys.stderr, flush=True)
    head = ["attack", "sandbox", "as", "tried", "contained", "failed", "detail"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|---|")
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:6], widths, strict=False)]
        print("| " + " | ".join(cells) + f" | {row[6][:110]} |")
    tried = sum(int(r[3]) for r in rows)
    failed = sum(int(r[5]) for r in rows)
    skipped = sum(r[3] == "0" for r in rows)
    print(
        f"\ntotal: {tried} tried, {tried - failed} contained, {failed} failed, "
        f"{skipped} rows skipped"
    )


if __name__ == "__main__":
    main()
