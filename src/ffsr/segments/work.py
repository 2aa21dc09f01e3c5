"""One segment by index, from the work folder alone: what a Ray task, a Kubernetes Indexed
Job pod or a Slurm array task runs (`ffsr segments work FOLDER [--index N]`).

Everything a worker needs is in the manifest the driver wrote (source, graph, segments,
ffmpeg, model files), so a worker on another machine needs only the shared storage mounted
at the same path. The local executor builds its tasks here too: every executor runs the
same ffmpeg command and writes the same done record. Running a finished segment again
does nothing (a rescheduled pod, a retried task).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate
from ffsr.segments.container import (
    IMAGE_FFMPEG,
    check_image,
    container_source,
    docker_argv,
    staging_folder,
)
from ffsr.segments.executor import LocalExecutor, Task
from ffsr.segments.frames import Segment
from ffsr.segments.manifest import MANIFEST, read_manifest, source_identity
from ffsr.segments.worker import (
    Done,
    partial_file,
    read_done,
    record_done,
    segment_file,
    worker_argv,
)
from ffsr.upscale_job import CONTAINER_OUT

INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")
"""Where a scheduler puts the index: a Kubernetes Indexed Job, then a Slurm job array."""


def segment_index(given: int | None, env: Mapping[str, str]) -> int:
    """--index, else the scheduler's variable (the first of INDEX_VARIABLES that is set)."""
    if given is not None:
        return given
    for name in INDEX_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise FfsrError(f"{name} is '{value}', not a segment index.")
            return int(value)
    raise FfsrError(f"No segment index: pass --index N or run under a scheduler that sets "
                    f"{' or '.join(INDEX_VARIABLES)}.")


def segments_of(manifest: dict[str, Any]) -> list[Segment]:
    return [Segment(**s) for s in manifest["segments"]]


def planned_segments(folder: Path) -> list[Segment]:
    """The segments the manifest in ``folder`` plans, or one sentence saying there is none."""
    manifest = read_manifest(folder)
    if manifest is None or not isinstance(manifest.get("segments"), list):
        raise FfsrError(f"{folder} holds no plan; run `ffsr upscale … --segments N "
                        "--executor none` first.")
    return segments_of(manifest)


def job_status(folder: Path) -> list[tuple[Done | None, str | None]]:
    """Per planned segment, in order: its done record where it and its file check out (size
    and sha256, as --resume checks them), else None with why it is made again (None, None:
    not made yet)."""
    return [read_done(folder, seg) for seg in planned_segments(folder)]


def segment_task(folder: Path, manifest: dict[str, Any], seg: Segment, ffmpeg: str,
                 on_done: Callable[[Done], None], attempt: str = "") -> Task:
    """The worker's ffmpeg (worker.worker_argv on the manifest's source and graph) and, once
    it succeeded, the rename and the done record."""
    info = manifest["worker"]
    written = partial_file(folder, seg.index, attempt)
    # A pre-pass (segments.prepass) gives workers its file and the graph's per-frame rest.
    source, graph = info.get("source", manifest["source"]["path"]), info.get("graph", manifest["graph"])
    log = folder / f"segment-{seg.index:04d}.log"
    spec = info.get("docker")
    if spec:  # in the image (segments.container): its paths, a folder its user can write
        staging = staging_folder(folder, written.stem)
        written = staging / written.name
        argv = worker_argv(IMAGE_FFMPEG, container_source(Path(source), folder), spec["graph"],
                           info["in_label"], seg, Path(CONTAINER_OUT) / written.name,
                           info.get("pix_fmt"))
        argv = docker_argv(spec, argv[1:], folder, staging, os.environ.get("CUDA_VISIBLE_DEVICES"))
        cleanup = partial(shutil.rmtree, staging, ignore_errors=True)
    else:
        argv = worker_argv(ffmpeg, source, graph, info["in_label"], seg, written,
                           info.get("pix_fmt"))
        # stopped or failed: no half-written segment stays (renamed away when it succeeded)
        cleanup = partial(written.unlink, missing_ok=True)

    started: list[float] = []

    def finish() -> None:
        os.replace(written, segment_file(folder, seg.index))
        on_done(record_done(folder, seg, started[-1] if started else None))

    return Task(seg.index, argv, log, finish, lifeline=bool(spec), cleanup=cleanup,
                on_start=lambda: started.append(time.time()))


def _visible(folder: Path) -> dict[str, Any]:
    """The manifest, or one sentence saying that this machine does not see the work folder."""
    manifest = read_manifest(folder)
    if manifest is None or not isinstance(manifest.get("worker"), dict):
        raise FfsrError(f"This worker ({socket.gethostname()}) cannot see the work folder {folder} "
                        f"(no readable {MANIFEST}): mount the shared storage at the same path on "
                        "every worker.")
    return manifest


def _check_inputs(manifest: dict[str, Any]) -> str:
    """The ffmpeg to run, once the source and the model files are seen as the driver saw them."""
    host = socket.gethostname()
    saved = manifest["source"]
    source = Path(saved["path"])
    if not source.is_file():
        raise FfsrError(f"This worker ({host}) cannot see the input {source}: mount the shared "
                        "storage at the same path on every worker.")
    if source_identity(source, saved["duration"]) != saved:
        raise FfsrError(f"The input {source} changed since the segments were planned; plan again.")
    worker_source = Path(manifest["worker"].get("source", source))
    if not worker_source.is_file():
        raise FfsrError(f"This worker ({host}) cannot see the pre-pass file {worker_source}: mount "
                        "the shared storage at the same path on every worker.")
    for model in manifest["worker"]["models"]:
        if not Path(model).is_file():
            raise FfsrError(f"This worker ({host}) cannot see the model file {model}: keep the "
                            "models on the shared storage (FFSR_MODELS_DIR) at the same path.")
    if manifest["worker"].get("docker"):  # the image's ffmpeg runs it
        check_image(manifest["worker"]["docker"])
        return ""
    ffmpeg = os.environ.get("FFSR_FFMPEG") or manifest["worker"]["ffmpeg"]
    if not Path(ffmpeg).is_file():
        raise FfsrError(f"This worker ({host}) has no ffmpeg at {ffmpeg}: install ffsr's FFmpeg "
                        "there or set FFSR_FFMPEG.")
    return str(ffmpeg)


def run_segment(folder: Path, index: int | None = None,
                on_progress: Callable[[int, ProgressUpdate], None] | None = None,
                env: Mapping[str, str] | None = None) -> Done:
    """Make segment ``index`` (or the scheduler's) of the job in ``folder``; its done record."""
    folder = folder.absolute()
    manifest = _visible(folder)
    segments = segments_of(manifest)
    i = segment_index(index, os.environ if env is None else env)
    if not 0 <= i < len(segments):
        raise FfsrError(f"Segment index {i} is out of range: {folder} holds segments 0 to "
                        f"{len(segments) - 1}.")
    seg = segments[i]
    kept, _ = read_done(folder, seg)
    if kept:
        return kept
    ffmpeg = _check_inputs(manifest)
    made: list[Done] = []
    attempt = uuid.uuid4().hex[:8]
    try:
        LocalExecutor(1).run([segment_task(folder, manifest, seg, ffmpeg, made.append, attempt)],
                             on_progress)
    finally:  # a failed or stopped attempt leaves nothing behind
        partial_file(folder, i, attempt).unlink(missing_ok=True)
    if not made:
        raise FfsrError(f"Segment {i} was stopped before it finished.")
    return made[0]
