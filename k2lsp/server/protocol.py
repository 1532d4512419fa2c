"""Every custom name and payload the k2lsp language server speaks, in one place.

Editor clients (editors/vscode, editors/nvim) are built against exactly this file.

Transport: standard LSP. Client -> server calls are `workspace/executeCommand` with ONE
argument, a JSON object. Every run-starting command answers at once (the editor never waits on
the model) with `RunStarted`. Arguments (``range`` is an LSP Range; ``uri`` and ``range`` are
optional for ask/task, the whole document when ``range`` is absent):

- k2lsp.ask ``{question, uri?, range?, conversationId?, context?}`` (never edits);
  k2lsp.task ``{task, uri?, range?, conversationId?, context?}``: a `conversationId` from an
  earlier `RunStarted` continues that conversation, `context` is a list of context items
  (``{kind: file|buffer|selection|diagnostics, ...}``; see `k2lsp.server.chat`);
- k2lsp.fixDiagnostic ``{uri, diagnostic}`` (an LSP Diagnostic);
- k2lsp.explain / k2lsp.refactor / k2lsp.writeTests ``{uri?, range?, instruction?}``;
- k2lsp.fixFailingTest ``{uri, testName, framework?, range?, message?}`` (the code action
  fills every field; framework: pytest | unittest | jest | vitest | go | cargo);
- k2lsp.cancel / k2lsp.accept / k2lsp.reject / k2lsp.undo ``{runId?}``: cancel without runId
  cancels every active run and refactor job (answer ``{cancelled: [runId...], jobs?: n}``;
  a job stops after its current tool call and stays resumable); undo without runId undoes the
  last delivered run (answer ``{runId, restored: [path...]}``); accept/reject without runId
  act on the only pending preview;
- k2lsp.accept / k2lsp.reject ``{runId?, hunks?: [id...], files?: [path...]}`` during a
  review per hunk (``files``: every pending hunk of those files): decide
  those hunks (no `hunks`: every pending one) -> `ReviewAnswer`; an accepted hunk is applied at
  once (versioned, merged over the user's typing) or becomes a conflict when its lines changed;
- k2lsp.applyPatch ``{path?}``: apply a saved patch (default: the newest one in the state dir)
  to the editor's current text through `workspace/applyEdit`; a hunk that does not match
  applies nothing -> ``{path, applied: [path...]}``;
- k2lsp.status ``{}`` -> `StatusResult`;
- k2lsp.config.trust ``{path?, revoke?}`` -> ``{path, trusted, configHash}``;
- k2lsp.checkSetup ``{}`` -> ``{ok, checks, problems}`` (k2lsp.health.checks.summary).
A refused command is answered with a JSON-RPC error (code -32803) whose message is the
sentence to show (k2lsp.server.failure); the server does not show it a second time.

Server -> client, for every client (standard channels only):
- `$/progress` work-done progress per run (only if `window.workDoneProgress` is advertised;
  otherwise, without the custom channel, the same lines as `window/showMessage` Log, at most
  one every 2 s); cancellable: `window/workDoneProgress/cancel` cancels the run.
- `window/showMessage` Error, once, for a run that failed (provider errors name the host URL).
- `window/logMessage`: lines ``[k2lsp <run id>] <text>`` (reasoning, tool calls, results);
  one message may hold several such lines separated by newlines.
- a live Markdown transcript ``<state dir>/transcripts/<run id>.md`` opened with
  `window/showDocument` (takeFocus false) when the client supports showDocument.
- the change set as one `workspace/applyEdit` (versioned `TextDocumentEdit`s when the client
  advertises `workspace.workspaceEdit.documentChanges`, else plain `changes`).
- approvals via `window/showMessageRequest` with the actions in `APPROVAL_ACTIONS`.
- `textDocument/publishDiagnostics` with source ``"k2lsp"`` for failing tests.

Server -> client, only for clients that opt in with
``initializationOptions: {"k2lsp": {"streamNotifications": true}}`` or
``capabilities.experimental: {"k2lsp": {"stream": true}}``:

- `k2lsp/stream` notification:
  ``{"runId": "20261122-210501-ab12", "events": [<event>, ...]}``
  Each event is `k2lsp.agent.events.Event.to_dict()`: a flat object
  ``{"type", "run_id", "seq", "ts", ...fields}`` typed by the classes of
  `k2lsp.agent.events.EVENT_TYPES`; its JSON schema is docs/events.schema.json (see
  docs/events.md), the editors' types are generated from it. Ignore fields you do not know.
  Batches are sent at most once per ~50 ms per run (the batch holding `run_finished` goes out
  at once); events are in `seq` order, none is lost
  or repeated; consecutive `reasoning` (or `content`) deltas inside a batch are merged into
  one event carrying the seq of the last delta merged. `run_finished` is always the last
  event of the last batch of a run.
- `k2lsp/delivery` notification when the run's changes were handled
  (after every earlier event of the run and before its `run_finished`; a preview sends
  "preview" first, then the final status):
  ``{"runId", "status", "paths", "message", "patchPath"?, "diffUri"?}`` with status one of
  `DELIVERY_STATUSES`; paths are workspace-relative, patchPath (conflict/refused) the saved
  patch, diffUri (preview) the diff shown. Not sent for runs cancelled or failed before delivery:
  their `run_finished` says so. The same message is also shown with window/showMessage.

Configuration (initializationOptions ``{"k2lsp": {...}}`` and `workspace/configuration`
section ``"k2lsp"``): keys are `k2lsp.config.settings.Settings` field names in snake_case or
camelCase
(``baseUrl``, ``model``, ``maxSteps``, ``budgetUsd``, ``sandbox``, ``allowCommands``...) plus
the server-only keys in `SERVER_OPTION_KEYS`, validated by the models of
`k2lsp.config.model` / `k2lsp.server.config` (docs/configuration.md). Invalid values and
unknown keys are reported with `window/showMessage` (type Warning) and dropped; null or ""
means unset.
"""

from __future__ import annotations

from typing import Literal, TypedDict

# --- commands (workspace/executeCommand) -----------------------------------------------------
CMD_ASK = "k2lsp.ask"
CMD_TASK = "k2lsp.task"
CMD_FIX_DIAGNOSTIC = "k2lsp.fixDiagnostic"
CMD_EXPLAIN = "k2lsp.explain"
CMD_REFACTOR = "k2lsp.refactor"
CMD_WRITE_TESTS = "k2lsp.writeTests"
CMD_FIX_FAILING_TEST = "k2lsp.fixFailingTest"
CMD_CANCEL = "k2lsp.cancel"
CMD_UNDO = "k2lsp.undo"
CMD_STATUS = "k2lsp.status"
CMD_ACCEPT = "k2lsp.accept"
CMD_REJECT = "k2lsp.reject"
CMD_TRUST = "k2lsp.trust"  # {path?, revoke?} -> {path, trusted, configHash}
# {} -> {ok, checks: [{name, status, detail, fix}], problems: [one line each]}; called with no
# argument (a plain client's command palette) it also shows the result with showMessage
CMD_CHECK_SETUP = "k2lsp.checkSetup"
CMD_TAKE_CANDIDATE = "k2lsp.takeCandidate"  # {runId, candidate: "c2"} -> {runId, delivery}
CMD_APPLY_PATCH = "k2lsp.applyPatch"  # {path?} -> {path, applied: [path...]}

# Command -> run mode (`k2lsp.agent.session.MODES`).
RUN_COMMANDS: dict[str, str] = {
    CMD_ASK: "ask",
    CMD_TASK: "task",
    CMD_FIX_DIAGNOSTIC: "fix_diagnostic",
    CMD_EXPLAIN: "explain",
    CMD_REFACTOR: "refactor",
    CMD_WRITE_TESTS: "write_tests",
    CMD_FIX_FAILING_TEST: "fix_failing_test",
}
CONTROL_COMMANDS = (
    CMD_CANCEL,
    CMD_UNDO,
    CMD_STATUS,
    CMD_ACCEPT,
    CMD_REJECT,
    CMD_TRUST,
    CMD_CHECK_SETUP,
    CMD_TAKE_CANDIDATE,
    CMD_APPLY_PATCH,
)
ALL_COMMANDS = (*RUN_COMMANDS, *CONTROL_COMMANDS)

# --- custom notifications (server -> client, opt-in) -----------------------------------------
STREAM_NOTIFICATION = "k2lsp/stream"
DELIVERY_NOTIFICATION = "k2lsp/delivery"
# Sent (opt-in clients) when the workspace's k2lsp.toml / [tool.k2lsp] sets keys that are
# ignored until the user trusts the repository (`UntrustedParams`); every client also gets
# the same one line with window/showMessage (Warning). Sent once per configuration version.
UNTRUSTED_NOTIFICATION = "k2lsp/untrusted"
# Review per hunk (clients with `reviewHunks` and `preview`): the proposal of a run, per file
# and hunk, against the editor's text when the run ended (`ReviewParams`).
REVIEW_NOTIFICATION = "k2lsp/review"

# Diagnostics published for failing tests carry this source.
DIAGNOSTIC_SOURCE = "k2lsp"

# window/showMessageRequest answers for approvals.
APPROVE_ONCE = "Allow once"
APPROVE_RUN = "Allow for this run"
DENY = "Deny"
APPROVAL_ACTIONS = (APPROVE_ONCE, APPROVE_RUN, DENY)

# Preview mode: the diff is shown, the run waits for accept/reject.
PREVIEW_ACCEPT = "Apply"
PREVIEW_REJECT = "Discard"

# Server-only configuration keys (besides Settings fields).
SERVER_OPTION_KEYS = (
    "streamNotifications",  # bool, default false: send k2lsp/stream and k2lsp/delivery
    "preview",  # bool, default false: show the diff and wait for k2lsp.accept / k2lsp.reject
    "reviewHunks",  # bool, default false: with preview, send k2lsp/review (decide per hunk)
    "transcript",  # bool, default true: write and open the live Markdown transcript
    "logReasoning",  # bool, default true: reasoning lines in window/logMessage
    "approvals",  # "ask" (default: showMessageRequest) | "policy" (headless: no prompt)
    "workspaceTrusted",  # bool: the editor's workspace trust (VS Code); absent: `k2lsp trust`
    "heavyCandidates",  # int, default 0: 2-16 adds "(K2 heavy ×N)" variants of editing actions
)

DeliveryStatus = Literal[
    "applied",  # the edit landed in the editor
    "merged",  # the user edited meanwhile; the change was rebased (three-way) and applied
    "conflict",  # could not be merged; nothing applied; the patch is saved at patchPath
    "refused",  # the client rejected workspace/applyEdit; patch saved at patchPath
    "preview",  # waiting for k2lsp.accept / k2lsp.reject; diff at diffUri
    "rejected",  # the user rejected the preview; nothing applied
    "nothing",  # the run changed no file
    "skipped",  # the run did not succeed (cancelled, error): nothing applied
]
DELIVERY_STATUSES: tuple[str, ...] = (
    "applied",
    "merged",
    "conflict",
    "refused",
    "preview",
    "rejected",
    "nothing",
    "skipped",
)


class RunStarted(TypedDict):
    """Answer of every run-starting command."""

    runId: str
    transcriptUri: str  # "" when transcripts are off
    conversationId: str  # pass it to k2lsp.ask / k2lsp.task to continue the conversation


class RunInfo(TypedDict):
    """One run in k2lsp.status."""

    runId: str
    mode: str
    task: str
    state: str  # running | finished | cancelled | preview
    outcome: str  # "" while running, else an Outcome value
    delivery: str  # a DeliveryStatus or "" while running
    steps: int
    promptTokens: int
    cachedTokens: int
    completionTokens: int
    costUsd: float
    conversationId: str  # "" once finished unless its conversation was kept


class StatusResult(TypedDict):
    """Answer of k2lsp.status (pass `{}` to poll quietly; with no argument the server also
    shows a one-line summary with window/showMessage)."""

    runs: list[RunInfo]
    active: int
    promptTokens: int
    cachedTokens: int
    completionTokens: int
    costUsd: float


class UntrustedParams(TypedDict):
    """`k2lsp/untrusted`: repository settings ignored until the user trusts the repository."""

    root: str  # the workspace folder
    keys: list[str]  # the ignored Settings keys (snake_case)
    configHash: str  # changes whenever k2lsp.toml / [tool.k2lsp] changes
    message: str  # the one-line notice (also shown with window/showMessage)
    editorDecides: (
        bool  # the editor passed workspaceTrusted: trust it there, not with k2lsp.config.trust
    )


class ReviewHunk(TypedDict):
    """One hunk of `ReviewParams`: lines `start`.. (0-based, in the editor's text when the review
    started) holding `oldLines` become `newLines` (lines without their endings)."""

    id: int
    start: int
    oldLines: list[str]
    newLines: list[str]
    state: str  # pending | conflict (decided before it was shown)


class ReviewFile(TypedDict):
    """One file of `ReviewParams`; created, deleted and renamed files are one whole-file hunk."""

    path: str  # workspace-relative
    uri: str
    kind: str  # modified | created | deleted | renamed
    version: int | None  # the buffer version the hunks were computed on (None: not open)
    hunks: list[ReviewHunk]


class ReviewParams(TypedDict):
    """`k2lsp/review`: a run's proposal waiting for decisions per hunk (after its "preview"
    `k2lsp/delivery`; the final `k2lsp/delivery` of the run ends the review)."""

    runId: str
    title: str
    files: list[ReviewFile]


class ReviewConflict(TypedDict):
    """A hunk that could not be applied, and why."""

    id: int
    reason: str


class ReviewAnswer(TypedDict):
    """Answer of k2lsp.accept / k2lsp.reject during a review per hunk."""

    runId: str
    accepted: list[int]
    rejected: list[int]
    conflicts: list[ReviewConflict]
    pending: list[int]  # hunks still to decide; empty: the run delivers now
