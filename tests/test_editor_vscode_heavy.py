"""The VS Code extension's heavy-candidates core (editors/vscode/src/candidates.ts, bundled in
dist/core.mjs) fed with the events of a real heavy run: the real server over stdio, the scripted
fake K2 host with three different candidates, a real git repository. What "K2: Show heavy
candidates" would list and preview is computed by Node from those events and checked here."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from heavy_helpers import MODEL, run_heavy_task, start_heavy_editor
from test_editor_vscode import EXT, _build_extension, _node

from k2lsp.fake.server import FakeK2Server
from tests.lsp_fixtures import Editor, stop_editor

pytestmark = [pytest.mark.editor, pytest.mark.timeout(400)]

SHOW = """
import { readFileSync } from "node:fs";
import { CandidateStore, diffSides } from "./dist/core.mjs";
const store = new CandidateStore();
for (const ev of JSON.parse(readFileSync(process.argv[1], "utf8"))) store.onEvent(ev);
const items = store.items();
const sides = Object.fromEntries(items.map((i) => [i.label, diffSides(i.record.diff ?? "")]));
const show = (i) => ({
  title: i.title, description: i.description, detail: i.detail, takeable: i.takeable,
});
console.log(JSON.stringify({ latest: store.latest, items: items.map(show), sides }));
"""


@pytest.fixture
async def editor(tmp_path: Path) -> AsyncIterator[tuple[Editor, FakeK2Server]]:
    srv = FakeK2Server([], models=[MODEL])
    srv.start()
    ed = await start_heavy_editor(tmp_path, srv.base_url, "none")
    yield ed, srv
    await stop_editor(ed)
    srv.stop()


async def test_quickpick_items_and_diff_previews_from_a_real_heavy_run(
    editor: tuple[Editor, FakeK2Server], tmp_path: Path
) -> None:
    node = _node()
    _build_extension(node)
    ed, fake = editor
    started, info = await run_heavy_task(ed, fake, timeout=300)
    assert info["outcome"] == "success" and info["delivery"] == "applied", info
    events = tmp_path / "events.json"
    events.write_text(json.dumps(ed.events(started["runId"])))
    proc = subprocess.run(
        [node, "--input-type=module", "-e", SHOW, str(events)],
        cwd=EXT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout)
    assert shown["latest"] == started["runId"]
    items = {i["title"].split(" ")[0]: i for i in shown["items"]}
    assert set(items) == {"c1", "c2", "c3"}
    c1, c2, c3 = items["c1"], items["c2"], items["c3"]
    assert c3["title"] == "c3 ★ winner" and not c3["takeable"]
    assert c3["description"].startswith("success · $")
    assert c3["detail"].startswith("red→green 1/1; suite pass (")
    assert " — chosen: " in c3["detail"]
    assert "suite FAIL (" in c1["detail"] and " — rejected: full suite fails" in c1["detail"]
    assert " — rejected: " in c2["detail"] and "diff lines in calc.py" in c2["detail"]
    assert c1["takeable"] and c2["takeable"]
    # c2's preview: calc.py before/after with the rewrite only on the right
    (side,) = shown["sides"]["c2"]
    assert side["path"] == "calc.py"
    assert "    return a - b" in side["before"] and "TypeError" not in side["before"]
    assert "raise TypeError(" in side["after"] and "    return a - b" not in side["after"]
    # and the preview matches what taking c2 delivers into the buffer
    await ed.command("k2lsp.undo", {"runId": started["runId"]})
    await ed.command("k2lsp.takeCandidate", {"runId": started["runId"], "candidate": "c2"})
    text = ed.text("calc.py")
    assert all(line in text for line in side["after"].splitlines()[1:])
