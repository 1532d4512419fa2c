"""Emacs eglot (Debian emacs-nox + elpa-eglot) in batch mode: one standard-LSP round trip.

Evidence that a client with no k2lsp-specific code works: eglot starts `k2lsp --stdio`, asks for
code actions in a failing test, executes "K2: Fix failing test" with `workspace/executeCommand`,
and the server's `workspace/applyEdit` lands in the calc.py buffer. The server sends no custom
notification to such a client; reasoning reaches it as `window/logMessage`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from k2lsp.fake.script import ScriptItem
from k2lsp.fake.server import FakeK2Server, Reply
from tests.editor_helpers import found_or_skip, make_calc_project

pytestmark = pytest.mark.editor

MODEL = "kimi-k2-thinking"

# What every batch-Emacs script here starts with (run_eglot_batch puts it in front): eglot's
# settings for an unattended run, k2-note/k2-finish to record the result, k2-wait to poll (it
# runs k2-wait-hook between slices) and k2-eglot to start the server.
ELISP_PRELUDE = r"""(require 'eglot)
(require 'json)
(setq eglot-sync-connect 120
      eglot-connect-timeout 120
      eglot-confirm-server-initiated-edits nil
      confirm-kill-processes nil
      make-backup-files nil)
(defvar k2-result '())
(defvar k2-wait-hook nil "Run after each slice of `k2-wait'.")
(defun k2-note (key value) (push (cons key value) k2-result))
(defun k2-finish ()
  (with-temp-file (getenv "K2_RESULT") (insert (json-encode k2-result)))
  (kill-emacs 0))
(defun k2-wait (seconds pred)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall pred)) (< (float-time) deadline))
      (accept-process-output nil 0.2)
      (run-hooks 'k2-wait-hook))
    (funcall pred)))
(defun k2-root () (file-name-as-directory (getenv "K2_ROOT")))
(defun k2-eglot (root)
  "Turn on python-mode in the current buffer and start k2lsp (sandbox off) in eglot for ROOT."
  (python-mode)
  (eglot '(python-mode) (project-current nil root) 'eglot-lsp-server
         (list (getenv "K2TEST_BIN") "--stdio"
               :initializationOptions '(:k2lsp (:sandbox "none" :maxSteps 20)))
         "python"))
"""

ELISP = r"""(require 'seq)
(defun k2-fixed-p (file)
  (let ((calc (get-file-buffer file)))
    (and calc (with-current-buffer calc
                (save-excursion (goto-char (point-min)) (and (search-forward "a + b" nil t) t))))))
(condition-case err
    (let* ((root (k2-root))
           (default-directory root)
           ;; calc.py is open too: eglot 1.9 asks y-or-n-p before editing unvisited files
           (calc-buf (find-file-noselect (expand-file-name "calc.py" root)))
           (buf (find-file-noselect (expand-file-name "test_calc.py" root))))
      (with-current-buffer buf
        (k2-eglot root)
        (k2-note 'connected (and (eglot-current-server) t))
        (goto-char (point-min))
        (search-forward "assert add")
        (let* ((server (eglot-current-server))
               (pos (eglot--pos-to-lsp-position))
               (actions (jsonrpc-request
                         server :textDocument/codeAction
                         (list :textDocument (eglot--TextDocumentIdentifier)
                               :range (list :start pos :end pos)
                               :context (list :diagnostics []))))
               (fix (seq-find (lambda (a) (string-match-p "Fix failing test" (plist-get a :title)))
                              actions))
               (cmd (and fix (if (stringp (plist-get fix :command)) fix (plist-get fix :command)))))
          (k2-note 'titles (vconcat (mapcar (lambda (a) (plist-get a :title)) actions)))
          (when cmd
            (eglot-execute-command server (plist-get cmd :command) (plist-get cmd :arguments))
            (k2-note 'applied
                     (k2-wait (string-to-number (or (getenv "K2_WAIT_S") "180"))
                              (lambda () (k2-fixed-p (expand-file-name "calc.py" root)))))
            (let ((calc (get-file-buffer (expand-file-name "calc.py" root))))
              (k2-note 'calc (and calc (with-current-buffer calc (buffer-string)))))
            ;; reasoning reaches a standard client as window/logMessage; the run's end too
            (k2-wait 60 (lambda ()
                          (with-current-buffer (jsonrpc-events-buffer server)
                            (save-excursion (goto-char (point-min))
                                            (search-forward "The edit is in place" nil t)))))
            (k2-note 'events (with-current-buffer (jsonrpc-events-buffer server)
                               (buffer-string))))))
      (k2-finish))
  (error (k2-note 'error (format "%S" err)) (k2-finish)))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with a failing test: add() subtracts."""
    return make_calc_project(tmp_path)


def _emacs_with_eglot() -> str | None:
    emacs = shutil.which("emacs")
    if emacs is None:
        return None
    probe = subprocess.run(
        [emacs, "-q", "--batch", "--eval", "(require 'eglot)"],
        capture_output=True,
        timeout=120,
    )
    return emacs if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def emacs() -> str:
    """Path of an Emacs with eglot, or skip."""
    return found_or_skip(
        _emacs_with_eglot(), "emacs with eglot missing (apt-get install emacs-nox elpa-eglot)"
    )


def test_eglot_applies_fix_failing_test_with_standard_lsp_only(
    emacs: str, project: Path, tmp_path: Path
) -> None:
    replies: list[ScriptItem] = [
        Reply(
            reasoning="The test expects add(2, 3) == 5. Let me read calc.py first.",
            tool_calls=[("read_file", {"path": "calc.py"})],
        ),
        Reply(
            reasoning="add subtracts its arguments.",
            tool_calls=[
                (
                    "edit_file",
                    {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"},
                )
            ],
        ),
        Reply(reasoning="The edit is in place.", content="Fixed add()."),
    ]
    with FakeK2Server(replies, models=[MODEL]) as srv:
        data = run_eglot_batch(emacs, ELISP, project, srv.base_url, tmp_path)
    assert data["connected"] is True
    assert any("Fix failing test" in t for t in data["titles"]), data["titles"]
    assert data["applied"] is True, f"{data.get('calc')}\n{data.get('events', '')[-4000:]}"
    assert data["calc"] == "def add(a, b):\n    return a + b\n"
    events = data["events"]
    assert "window/logMessage" in events
    assert "The test expects add(2, 3) == 5" in events  # reasoning, through logMessage
    assert "k2lsp/stream" not in events  # no custom method for a standard client


ELISP_DEFAULT = r"""(defun k2-idle ()
  "What Emacs does when the user stops typing: eglot's idle timer sends pending didChange.
Batch Emacs never goes idle, so the wait loop does it."
  (dolist (b (buffer-list))
    (with-current-buffer b
      (when (and (bound-and-true-p eglot--managed-mode) eglot--change-idle-timer)
        (cancel-timer eglot--change-idle-timer)
        (setq eglot--change-idle-timer nil)
        (eglot--signal-textDocument/didChange)))))
(add-hook 'k2-wait-hook #'k2-idle)
(defun k2-messages ()
  (with-current-buffer (messages-buffer) (buffer-substring-no-properties (point-min) (point-max))))
(condition-case err
    (let* ((root (k2-root))
           (default-directory root)
           (calc-buf (find-file-noselect (expand-file-name "calc.py" root)))
           (buf (find-file-noselect (expand-file-name "test_calc.py" root))))
      (with-current-buffer buf
        (k2-eglot root)
        (k2-note 'connected (and (eglot-current-server) t))
        ;; a real selection: the whole test function
        (goto-char (point-min))
        (search-forward "def test_add")
        (let ((beg (line-beginning-position))
              (end (point-max))
              (asked nil))
          ;; the user presses RET at eglot's menu: the default action runs
          (cl-letf (((symbol-function 'completing-read)
                     (lambda (prompt _coll &optional _pred _req _init _hist def &rest _)
                       (setq asked (list prompt def))
                       def)))
            (let ((last-nonmenu-event ?a))  ; a keyboard event: eglot asks with completing-read
              (eglot-code-actions beg end nil t)))
          (k2-note 'prompt (car asked))
          (k2-note 'default (cadr asked)))
        (let ((server (eglot-current-server)))
          (k2-note 'applied
                   (k2-wait 180 (lambda ()
                                  (with-current-buffer calc-buf
                                    (save-excursion (goto-char (point-min))
                                                    (and (search-forward "a + b" nil t) t))))))
          (k2-wait 60 (lambda () (string-match-p "K2 changed 1 file" (k2-messages))))
          (k2-note 'messages (k2-messages))
          (k2-note 'events (with-current-buffer (jsonrpc-events-buffer server) (buffer-string))))))
  (error (k2-note 'error (format "%S" err))))
(k2-finish)
"""


def test_eglot_default_action_is_the_fix_and_it_shows_progress_and_the_answer(
    emacs: str, project: Path, tmp_path: Path
) -> None:
    """eglot 1.9 offers `isPreferred` as its menu default and has no $/progress support: the
    server sends it the run's progress as Log messages, which eglot shows in the echo area."""
    replies: list[ScriptItem] = [
        Reply(reasoning="Read first.", tool_calls=[("read_file", {"path": "calc.py"})]),
        Reply(
            reasoning="add subtracts.",
            tool_calls=[
                (
                    "edit_file",
                    {"path": "calc.py", "old_text": "return a - b", "new_text": "return a + b"},
                )
            ],
            delay_s=2.5,  # a run that lasts: progress lines are rate-limited to one per 2 s
        ),
        Reply(reasoning="Done.", content="Fixed add(): it subtracted."),
    ]
    with FakeK2Server(replies, models=[MODEL]) as srv:
        data = run_eglot_batch(emacs, ELISP_DEFAULT, project, srv.base_url, tmp_path)
    assert data["default"] == "K2: Fix failing test test_add", data["prompt"]
    assert data["applied"] is True, data.get("events", "")[-4000:]
    messages = data["messages"]
    progress = [
        line for line in messages.splitlines() if "(type=4): K2: Fix failing test ·" in line
    ]
    assert progress, messages  # the run's progress, in eglot's echo area
    assert any("step" in line for line in progress), progress
    answer = next((m for m in messages.splitlines() if "K2 changed 1 file" in m), messages[-1500:])
    assert "(calc.py)" in answer and "Fixed add(): it subtracted." in answer, answer
    assert ":isPreferred t" in data["events"] and "K2: Explain" in data["events"]
    assert "$/progress" not in data["events"]  # eglot 1.9 did not ask for it


def run_eglot_batch(
    emacs: str, body: str, project: Path, base_url: str, tmp_path: Path, prefix: str = ""
) -> dict:
    """Run `prefix`, ELISP_PRELUDE and `body` as one script in batch Emacs against k2lsp pointed
    at the fake host at `base_url`; the JSON the script wrote to $K2_RESULT (checked to exist
    and to carry no "error")."""
    script = tmp_path / "k2-eglot.el"
    script.write_text(";;; -*- lexical-binding: t -*-\n" + prefix + ELISP_PRELUDE + body)
    result = tmp_path / "result.json"
    server = Path(sys.executable).parent / "k2lsp"
    env = {
        **os.environ,
        "K2TEST_BIN": str(server) if server.exists() else "k2lsp",
        "K2_ROOT": str(project),
        "K2_RESULT": str(result),
        "K2LSP_BASE_URL": base_url,
        "K2LSP_API_KEY": "sk-test-editor-eglot",
        "K2LSP_MODEL": MODEL,
        "K2LSP_PROVIDER": "openai-compatible",
        "K2LSP_SANDBOX": "none",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path),
    }
    proc = subprocess.run(
        [emacs, "-q", "--batch", "-l", str(script)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.exists(), f"emacs wrote no result (exit {proc.returncode}):\n{proc.stderr[:3000]}"
    data: dict = json.loads(result.read_text())
    assert "error" not in data, f"{data.get('error')}\n{proc.stderr[-3000:]}"
    return data
