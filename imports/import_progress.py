"""An import's progress for its page: each stage's state and percentage, and the overall
figure, from the latest attempt's events and the row's live byte counters."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings

from imports.models import STAGE_ORDER, ImportEvent, ImportRequest, Stage

_PASSED = frozenset({"done", "skipped"})
_IN_ONE_PASS = frozenset({Stage.DOWNLOAD, Stage.CHECK, Stage.SCAN, Stage.PACKAGE})
_EVENT_STATES: dict[str, str] = {
    ImportEvent.Kind.STAGE_STARTED: "running",
    ImportEvent.Kind.STAGE_FINISHED: "done",
    ImportEvent.Kind.STAGE_SKIPPED: "skipped",
}
_ENDED_RUNNING: dict[str, str] = {
    ImportRequest.Status.FAILED: "failed",
    ImportRequest.Status.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class StageProgress:
    stage: str
    label: str
    state: str  # "pending", "running", "done", "skipped", "failed", "cancelled", "not run"
    percent: int | None  # None: no byte count for this stage
    bytes_done: int
    bytes_total: int


@dataclass(frozen=True)
class ImportProgress:
    stages: tuple[StageProgress, ...]
    overall_percent: int
    is_terminal: bool


def _stage_label(stage: str) -> str:
    return Stage(stage).label if stage in STAGE_ORDER else stage


def _latest_attempt_states(events: Iterable[ImportEvent]) -> dict[str, str]:
    """Each stage's state from the events; a new attempt ("started") starts over."""
    states = dict.fromkeys(STAGE_ORDER, "pending")
    for event in events:
        if event.kind == ImportEvent.Kind.STARTED:
            states = dict.fromkeys(STAGE_ORDER, "pending")
        elif event.stage in states and event.kind in _EVENT_STATES:
            states[event.stage] = _EVENT_STATES[event.kind]
    return states


def _with_outcome(states: dict[str, str], status: str) -> dict[str, str]:
    """The states once the import has ended: stages a success never ran are "not run", the
    stage running when it failed or was cancelled says so."""
    if status == ImportRequest.Status.SUCCEEDED:
        return {stage: state if state in _PASSED else "not run" for stage, state in states.items()}
    ended = _ENDED_RUNNING.get(status)
    if ended is None:
        return states
    return {stage: ended if state == "running" else state for stage, state in states.items()}


def _stage_progress(request: ImportRequest, stage: str, state: str) -> StageProgress:
    done, total = 0, 0
    percent: int | None = None
    if state in _PASSED:
        percent = 100
    elif state == "running" and request.stage == stage:
        done, total = request.bytes_done, request.bytes_total
        percent = min(100, done * 100 // total) if total > 0 else None
    elif state in {"pending", "not run"}:
        percent = 0
    return StageProgress(stage, _stage_label(stage), state, percent, done, total)


def _overall_percent(stages: list[StageProgress]) -> int:
    counted = [item for item in stages if item.state != "not run"]
    if not counted:
        return 0
    finished = sum(1 for item in counted if item.state in _PASSED)
    running = sum((item.percent or 0) / 100 for item in counted if item.state == "running")
    return min(100, int((finished + running) * 100 / len(counted)))


def _stages_shown(states: dict[str, str]) -> list[str]:
    """The one-pass stage, or the four stages it does at once: whichever this attempt ran
    (before it starts: whichever the settings choose)."""
    one_pass = states[Stage.STREAM] != "pending" or (
        settings.AEGIS_ONE_PASS_IMPORT and states[Stage.DOWNLOAD] == "pending"
    )
    hidden = _IN_ONE_PASS if one_pass else {Stage.STREAM.value}
    return [stage for stage in STAGE_ORDER if stage not in hidden]


def import_progress_of(request: ImportRequest, events: Iterable[ImportEvent]) -> ImportProgress:
    """Per-stage progress of the latest attempt: from the events and the row's live counters."""
    states = _with_outcome(_latest_attempt_states(events), request.status)
    stages = [_stage_progress(request, stage, states[stage]) for stage in _stages_shown(states)]
    overall = 100 if request.status == ImportRequest.Status.SUCCEEDED else _overall_percent(stages)
    return ImportProgress(tuple(stages), overall, request.is_terminal)
