"""Batches: several inputs, a folder or a glob through `ffsr upscale`, one ffmpeg process
per file. A bad file costs only itself: the others are still written, and the caller gets
every outcome to summarise. Models are resolved (converted on first use) once, up front.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate
from ffsr.upscale_job import (
    UpscalePlan,
    UpscaleRequest,
    UpscaleResult,
    default_output,
    plan_upscale,
    resolve_cards,
    run_upscale,
)

MEDIA_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".gif", ".apng", ".y4m", ".ts", ".mts",
    ".m2ts", ".flv", ".mpg", ".mpeg", ".wmv", ".ogv", ".3gp"})
"""What a folder contributes to a batch (other files in it are left alone)."""
GLOB_CHARS = frozenset("*?[")
EXIT_SOME_FAILED = 3
"""Exit status when some inputs of a batch failed and the others were written."""


@dataclass(frozen=True)
class BatchItem:
    input: Path
    output: Path | None
    """None: next to the input, named as a single `ffsr upscale` names it."""


@dataclass(frozen=True)
class Batch:
    items: list[BatchItem]
    is_batch: bool
    """False for one file named as such: then -o is the output file, as always."""


def _is_glob(arg: Path) -> bool:
    return not arg.exists() and any(ch in GLOB_CHARS for ch in str(arg))


def _expand(arg: Path) -> list[Path]:
    if arg.is_dir():
        found = sorted(p for p in arg.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in MEDIA_SUFFIXES)
        if not found:
            raise FfsrError(f"No video files in {arg} (by extension: .mp4, .mkv, .gif, …).")
        return found
    if _is_glob(arg):
        found = sorted(Path(p) for p in glob.glob(str(arg)) if Path(p).is_file())
        if not found:
            raise FfsrError(f"No file matches {arg}.")
        return found
    return [arg]  # a missing file fails on its own turn, with its own sentence


def collect_batch(args: Sequence[Path], output: Path | None, *, force: bool = False) -> Batch:
    """The files to upscale and where each goes; -o is a folder (created) for a batch, the
    output keeps the input's name and takes the container `ffsr upscale` would choose.
    ``force``: a batch even for one file (the Python API's output folder)."""
    if not args:
        raise FfsrError("Give at least one input.")
    is_batch = force or len(args) > 1 or any(a.is_dir() or _is_glob(a) for a in args)
    if not is_batch:
        return Batch([BatchItem(args[0], output)], False)
    inputs: list[Path] = []
    seen: set[Path] = set()
    for arg in args:
        for path in _expand(arg):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                inputs.append(path)
    if output is None:
        return Batch([BatchItem(p, None) for p in inputs], True)
    if output.exists() and not output.is_dir():
        raise FfsrError(f"-o must be a folder when upscaling several inputs; {output} is a file.")
    items = [BatchItem(p, output / (p.stem + default_output(p, 2).suffix)) for p in inputs]
    taken: dict[Path, Path] = {}
    for item in items:
        assert item.output is not None
        if item.output.resolve() == item.input.resolve():
            raise FfsrError(f"-o {output} holds the inputs and names are kept, so {item.input.name} "
                            "would be overwritten; choose another folder.")
        if (first := taken.setdefault(item.output, item.input)) != item.input:
            raise FfsrError(f"{first} and {item.input} would both be written to {item.output}; "
                            "rename one or run them separately.")
    output.mkdir(parents=True, exist_ok=True)
    return Batch(items, True)


@dataclass
class BatchOutcome:
    item: BatchItem
    plan: UpscalePlan | None = None
    result: UpscaleResult | None = None
    error: FfsrError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_batch(req: UpscaleRequest, batch: Batch, *,
              log: Callable[[str], None] = lambda _: None,
              on_plan: Callable[[int, UpscalePlan], None] = lambda i, p: None,
              on_progress: Callable[[int, ProgressUpdate], None] = lambda i, u: None,
              on_done: Callable[[int, BatchOutcome], None] = lambda i, o: None,
              dry_run: bool = False) -> list[BatchOutcome]:
    """Plan and run every item with ``req``'s options, continuing past failures (Ctrl-C
    stops the batch). A model that cannot be resolved stops it before the first file."""
    resolve_cards(req.models, log)
    outcomes = []
    for i, item in enumerate(batch.items):
        outcome = BatchOutcome(item)
        try:
            outcome.plan = plan_upscale(replace(req, input=item.input, output=item.output), log)
            on_plan(i, outcome.plan)
            if not dry_run:
                outcome.result = run_upscale(outcome.plan, _tagged(i, on_progress))
        except FfsrError as e:
            outcome.error = e
        on_done(i, outcome)
        outcomes.append(outcome)
    return outcomes


def _tagged(i: int, on_progress: Callable[[int, ProgressUpdate], None]
            ) -> Callable[[ProgressUpdate], None]:
    return lambda update: on_progress(i, update)


def summary(outcomes: Sequence[BatchOutcome]) -> str:
    failed = [o.item.input.name for o in outcomes if o.error]
    done = len(outcomes) - len(failed)
    text = f"{done} of {len(outcomes)} files upscaled"
    return f"{text}; failed: {', '.join(failed)}." if failed else f"{text}."


def exit_status(outcomes: Sequence[BatchOutcome]) -> int:
    return EXIT_SOME_FAILED if any(o.error for o in outcomes) else 0
