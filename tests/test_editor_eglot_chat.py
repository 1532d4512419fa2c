"""A plain LSP client continues a conversation: batch Emacs with eglot loads the snippet that
docs/conversations.md gives for eglot, asks K2 a question, then sends a follow-up task with the
conversationId it got back; the follow-up's request carries the first turn and its edit lands
in the calc.py buffer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from k2lsp.fake.server import FakeK2Server, Reply
from tests import test_editor_eglot as eglot_tests
from tests.editor_helpers import make_calc_project
from tests.test_editor_eglot import run_eglot_batch

pytestmark = pytest.mark.editor
ROOT = Path(__file__).resolve().parent.parent
MODEL = "kimi-k2-thinking"
emacs = eglot_tests.emacs  # the fixture: an Emacs with eglot, or skip
FIX = ("edit_file", {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"})

DRIVER = r"""(defun k2-done-p (run-id)
  (let* ((status (jsonrpc-request (eglot-current-server) :workspace/executeCommand
                                  '(:command "k2lsp.status" :arguments [])))
         (run (seq-find (lambda (r) (equal (plist-get r :runId) run-id))
                        (plist-get status :runs))))
    (and run (not (member (plist-get run :state) '("running" "preview" "delivering"))))))
(condition-case err
    (let* ((root (k2-root))
           (default-directory root)
           (buf (find-file-noselect (expand-file-name "calc.py" root))))
      (with-current-buffer buf
        (k2-eglot root)
        (let ((first (my-k2 "what does add do?" t)))
          (k2-note 'first_done (k2-wait 120 (lambda () (k2-done-p first))))
          (k2-note 'conversation_1 my-k2-conversation))
        (let ((second (my-k2 "now fix it")))
          (k2-note 'second_done (k2-wait 120 (lambda () (k2-done-p second))))
          (k2-note 'conversation_2 my-k2-conversation))
        (k2-wait 30 (lambda ()
                      (save-excursion (goto-char (point-min)) (search-forward "a + b" nil t))))
        (k2-note 'calc (buffer-string)))
      (k2-finish))
  (error (k2-note 'error (format "%S" err)) (k2-finish)))
"""


def doc_snippet() -> str:
    text = (ROOT / "docs" / "conversations.md").read_text(encoding="utf-8")
    match = re.search(r"```elisp\n(.*?)```", text, re.S)
    assert match, "docs/conversations.md lost its eglot snippet"
    return match.group(1)


def test_eglot_follow_up_with_the_documented_snippet(emacs: str, tmp_path: Path) -> None:
    project = make_calc_project(tmp_path)
    replies = [
        Reply(reasoning="It subtracts.", content="add returns a minus b."),
        Reply(reasoning="Fix it.", tool_calls=[FIX]),
        Reply(reasoning="ok", content="Fixed."),
    ]
    with FakeK2Server(replies, models=[MODEL]) as srv:
        data = run_eglot_batch(emacs, DRIVER, project, srv.base_url, tmp_path, doc_snippet())
    assert data["first_done"] is True and data["second_done"] is True, data
    assert data["conversation_1"] and data["conversation_1"] == data["conversation_2"]
    assert srv.rejected == []
    body = srv.requests[1]["messages"]
    assert "what does add do?" in body[1]["content"]
    answer = next(m for m in body if m["role"] == "assistant")
    assert answer["reasoning_content"] == "It subtracts." and answer["content"] == (
        "add returns a minus b."
    )
    assert "now fix it" in body[-1]["content"]
    assert "return a + b" in data["calc"]
