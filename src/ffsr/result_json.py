"""`ffsr upscale --json`: one JSON document on stdout for scripts and CI (progress and
messages stay on stderr). The keys are documented in the README; add, never rename."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ffsr.batch import BatchOutcome
from ffsr.errors import FfsrError


def outcome_record(outcome: BatchOutcome) -> dict[str, Any]:
    """One input: what was written and how, or the one-sentence reason it was not."""
    plan, result, error = outcome.plan, outcome.result, outcome.error
    output = plan.output if plan else outcome.item.output
    record: dict[str, Any] = {"ok": outcome.ok, "input": str(outcome.item.input),
                              "output": str(output) if output else None}
    if plan:
        req = plan.request
        rate = req.fps or plan.info.frame_rate
        record |= {
            "models": [c.name for c in plan.cards],
            "backend": plan.backend,
            "device": req.device,
            "precision": plan.precision,  # None: the backend runs the model's own f32
            "runtime": req.runtime,
            "frame_rate": str(rate) if rate else None,
            "warnings": list(plan.notes),
        }
    if result:
        record |= {
            "frames": result.frames,
            "seconds": round(result.seconds, 3),
            "fps": round(result.frames / result.seconds, 2) if result.seconds > 0 else None,
        }
    if error:
        record |= {"error": error.message, "log": error.log_path}
    return record


def batch_json(outcomes: Sequence[BatchOutcome], is_batch: bool) -> str:
    """A single input gives its record; a batch gives totals and every record."""
    if not is_batch and len(outcomes) == 1:
        return json.dumps(outcome_record(outcomes[0]), indent=2)
    failed = sum(1 for o in outcomes if not o.ok)
    return json.dumps({"ok": failed == 0, "succeeded": len(outcomes) - failed, "failed": failed,
                       "results": [outcome_record(o) for o in outcomes]}, indent=2)


@contextmanager
def json_errors(enabled: bool) -> Iterator[None]:
    """With --json, a refusal before any file ran is a document too: ``{"ok": false, "error": …}``
    on stdout; the sentence still goes to stderr and the exit status is the error's."""
    try:
        yield
    except FfsrError as e:
        if enabled:
            print(json.dumps({"ok": False, "error": e.message, "log": e.log_path}, indent=2))
        raise
