"""`ffsr upscale --segments N [--resume]`: plan, run the unfinished segments, join.

The single-process plan (``ffsr.upscale_job.plan_upscale``) is made first and read, never
changed: its graph runs in every worker and its command, with the segments as input, is
the join. The work folder beside the output (``.<output>.ffsr-segments``) holds the
manifest, the segments and their done records until the join succeeded.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.ffmpeg_tools import FfmpegChoice
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.model_card import ModelCard
from ffsr.progress import ProgressUpdate
from ffsr.segments.after import split_after, tail_in_join
from ffsr.segments.container import image_spec, planned_image, remove_unstarted
from ffsr.segments.dedupe import kept_pts, with_decisions, with_decisions_and_context
from ffsr.segments.executor import LocalExecutor
from ffsr.segments.frames import Segment, as_deinterlaced, cut, format_start, probe_frames
from ffsr.segments.join import Relay, join_task, progress_router
from ffsr.segments.manifest import (
    build_manifest,
    check_resumable,
    read_manifest,
    source_identity,
    write_manifest,
)
from ffsr.segments.prepass import (
    WORKER_LABEL,
    Split,
    needs_prepass,
    per_frame_graph,
    rest_options,
    run_prepass,
    split_graph,
)
from ffsr.segments.temporal import refusal, start_shift, with_context
from ffsr.segments.work import segment_task
from ffsr.segments.worker import INTERMEDIATE_PIX_FMTS, Done, read_done
from ffsr.upscale_job import UpscalePlan, UpscaleResult, container_cards

Progress = Callable[[str, ProgressUpdate], None]
"""(phase, update): phase "segments" counts frames over all segments, then "join"."""


@dataclass(frozen=True)
class SegmentOptions:
    segments: int
    jobs: int = 1
    resume: bool = False
    executor: str = "local"
    """local (processes here), ray (a Ray cluster) or none (write the plan for an external
    scheduler and stop: Kubernetes, Slurm; a later --resume joins)."""
    ray_address: str | None = None
    gpus_per_segment: float | None = None
    """GPUs each Ray task asks for; None: 1 with --device cuda, else 0."""


EXECUTORS = ("local", "ray", "none")


@dataclass(frozen=True)
class SegmentedResult:
    result: UpscaleResult
    segments: int
    made: list[int]
    """Indices of the segments this run made (the rest were kept from an earlier run)."""
    notes: list[str]
    records: list[Done]
    """Every segment's done record, in order (where each was made: host, GPU)."""


def work_folder(output: Path) -> Path:
    return output.with_name(f".{output.name}.ffsr-segments")


def refuse_unsupported(plan: UpscalePlan) -> None:
    """Segments are exact for per-frame graphs, RIFE (segments.temporal), the whole-clip
    filters (segments.prepass, segments.after: also a .gif's palette); the rest is refused
    in one sentence."""
    req = plan.request
    why = refusal(req.fps, req.interpolation, req.dedupe, plan.info.frame_rate,
                  req.interpolate_after)
    if why:
        raise FfsrError(why)
    if plan.output.suffix.lower() == ".gif" and req.fps and \
            not (req.interpolate_after and req.interpolation != "rife"):
        raise FfsrError("--segments makes a .gif only where the join runs its palette (one for "
                        "the whole clip) after every other filter: with --fps, only with "
                        "--interpolate-after (not RIFE); run without --segments.")
    if req.frames:
        raise FfsrError("--segments cannot be combined with --frames; run without --segments.")
    if not req.input.is_file():
        raise FfsrError("--segments needs a video file as input (not an image sequence).")


def plan_segments(plan: UpscalePlan, count: int, split: Split | None = None,
                  prepass: Path | None = None,
                  image: str | None = None) -> tuple[list[Segment], dict[str, Any], int,
                                                     Fraction]:
    """The cut, the manifest, the start time (µs) the join subtracts (the file's, which
    ffmpeg subtracts in the single-process run, where the segments keep absolute times) and
    the time base of the frames cut.
    With a pre-pass (segments.prepass) the segments cut its file instead of the input.
    ``image``: the id of the image the segments run in (--runtime docker), else None."""
    req = plan.request
    ffprobe = FfmpegChoice(Path(plan.argv[0]), "").ffprobe
    source, stream = (prepass, 0) if prepass else (req.input, plan.info.index)
    table = probe_frames(ffprobe, source, stream)
    start = format_start(ffprobe, source)
    segments = cut(table, count, start)
    start_us = round(start * 1_000_000)
    after = None
    if prepass:  # its timestamps are the graph's own already: the input's start is gone
        start_us = 0
        if split and split.ticks:  # in ticks, for the join's interpolator (segments.after)
            after = {"time_base": [split.ticks.numerator, split.ticks.denominator], "shift": 0}
    elif tail_in_join(plan):  # per-frame workers writing ticks (segments.after)
        after = {"time_base": [table.time_base.numerator, table.time_base.denominator],
                 # --dedupe's setpts=N/FRAME_RATE/TB starts the time line at 0 itself
                 "shift": 0 if req.dedupe else start_shift(table.time_base, start_us)}
        if req.dedupe:
            segments = with_decisions(segments, table,
                                      kept_pts(plan.argv[0], req.input, plan.info.index))
    elif req.fps and req.dedupe:  # the drawings decided once (after bwdif), RIFE on them
        seen = as_deinterlaced(table) if req.deinterlace else table
        segments = with_decisions_and_context(
            segments, seen, kept_pts(plan.argv[0], req.input, plan.info.index, req.deinterlace),
            start, req.fps)
    elif req.fps:  # RIFE: context frames, the single-process time line, kept output slots
        segments = with_context(segments, table, start, start_us, req.fps)
    elif req.dedupe:  # mpdecimate once over the clip; workers select what it kept
        segments = with_decisions(segments, table,
                                  kept_pts(plan.argv[0], req.input, plan.info.index))
    manifest = job_manifest(plan, segments, image)
    manifest["requested_segments"] = count
    # What a worker elsewhere needs (segments.work); resume compares the parts above.
    manifest["worker"] = {"ffmpeg": plan.argv[0], "in_label": f"0:{plan.info.index}",
                          "models": [str(c.path_for(plan.backend)) for c in plan.cards]}
    if not after:  # the worker runs the graph to its end: it converts as the single process does
        manifest["worker"]["pix_fmt"] = intermediate_pix_fmt(plan.argv)
    time_base = table.time_base if after else None
    if split and prepass:
        manifest["worker"].update(source=str(prepass.resolve()), graph=split.worker,
                                  in_label=WORKER_LABEL)
    if after:
        cut_after = split.after if split and split.after else \
            split_after(plan.cards, _options(plan), plan.graph, table.time_base)
        manifest["worker"]["graph"] = cut_after.worker
        manifest["join"] = {**after, "tail": cut_after.tail}
    if image:  # each segment's ffmpeg in the image (segments.container)
        manifest["worker"]["docker"] = image_spec(plan, image, worker_graph(
            plan, container_cards(plan.cards), split is not None, time_base))
    # The join's input timestamps: absolute (per-frame), or already the file's (RIFE,
    # --dedupe's N/FRAME_RATE, the pre-pass); the join converts ticks itself.
    return segments, manifest, 0 if req.fps or req.dedupe else start_us, table.time_base


def intermediate_pix_fmt(argv: list[str]) -> str | None:
    """The output's -pix_fmt where the intermediate can hold it (worker.INTERMEDIATE_PIX_FMTS);
    None: the worker writes what its graph makes, and the join converts."""
    fmt = argv[argv.index("-pix_fmt") + 1] if "-pix_fmt" in argv[:-1] else None
    return fmt if fmt in INTERMEDIATE_PIX_FMTS else None


def _options(plan: UpscalePlan) -> GraphOptions:
    if plan.graph_options is None:
        raise FfsrError("Internal: the plan has no graph options.")
    return plan.graph_options


def worker_graph(plan: UpscalePlan, cards: list[ModelCard], prepass: bool,
                 ticks: Fraction | None) -> str:
    """What a worker runs, with ``cards``' model paths (here, or in the image): the graph's
    per-frame rest after a pre-pass, its part before the interpolator when the join
    interpolates (writing pts as ``ticks``: segments.after), else the whole graph."""
    opts = _options(plan)
    if prepass:
        graph, opts = per_frame_graph(cards, opts), rest_options(opts, WORKER_LABEL)
    else:
        graph = render_graph(cards, opts)
    return split_after(cards, opts, graph, ticks).worker if ticks else graph


def job_manifest(plan: UpscalePlan, segments: list[Segment] | None,
                 image: str | None = None) -> dict[str, Any]:
    """What the job is made from (segments.manifest); without ``segments`` for the checks
    a resume can make before the cut (before a pre-pass, which is not free)."""
    from ffsr import __version__
    from ffsr.ffmpeg_tools import binary_identity
    from ffsr.versions import ffmpeg_version

    req = plan.request
    command = [("<output>" if a == str(plan.partial) else a) for a in plan.argv[1:]]
    manifest = build_manifest(
        source=source_identity(req.input, plan.info.duration), segments=segments or [],
        graph=plan.graph, command=command,
        models={c.name: c.file_for(plan.backend).sha256 for c in plan.cards},
        ffsr_version=str(__version__),
        ffmpeg={"version": ffmpeg_version(), "binary": binary_identity(Path(plan.argv[0])),
                **({"image": image} if image else {})})
    if segments is None:
        del manifest["segments"]
    return manifest


@dataclass
class Prepared:
    """A checked plan: what is kept, what is to be made."""

    segments: list[Segment]
    manifest: dict[str, Any]
    folder: Path
    done: dict[int, Done]
    notes: list[str]
    start_us: int
    started: float
    time_base: Fraction
    """The frames' (the input's stream, or the pre-pass file's)."""


def prepare_segments(plan: UpscalePlan, opts: SegmentOptions,
                     on_prepass: Callable[[int, ProgressUpdate], None] | None = None) -> Prepared:
    """Every check and refusal before the segments: the pre-pass where the graph has one,
    cut, manifest, what a resume keeps."""
    refuse_unsupported(plan)
    # a missing image refuses before any work
    image = planned_image(plan) if plan.request.runtime == "docker" else None
    # -m none and unsplittable graphs refuse here, before any work
    split = split_graph(plan) if needs_prepass(plan) else None
    if opts.executor not in EXECUTORS:
        raise FfsrError(f"Unknown executor '{opts.executor}'; choose {', '.join(EXECUTORS)}.")
    if opts.executor == "ray":
        from ffsr.segments.ray_executor import require_ray

        require_ray()
    started = time.monotonic()
    folder = work_folder(plan.output)
    notes: list[str] = []
    if opts.resume:  # before any work: a changed input or option refuses at once
        check_resumable(read_manifest(folder), job_manifest(plan, None, image), folder)
    elif folder.exists():
        finished = len(list(folder.glob("segment-*.done.json")))
        if finished and not plan.request.overwrite:  # hours of work are never thrown away silently
            raise FfsrError(f"{folder} holds {finished} finished segments of an interrupted run; "
                            "pass --resume to keep them or --overwrite to start over.")
        shutil.rmtree(folder)
    folder.mkdir(exist_ok=True)
    if image:
        remove_unstarted(folder)
    prepass = run_prepass(plan, split, folder, on_prepass) if split else None
    segments, manifest, start_us, time_base = plan_segments(plan, opts.segments, split, prepass, image)
    if opts.resume:
        check_resumable(read_manifest(folder), manifest, folder)
    write_manifest(folder, manifest)
    done: dict[int, Done] = {}
    for seg in segments:
        kept, why = read_done(folder, seg)
        if kept:
            done[seg.index] = kept
        elif why:
            notes.append(why)
    return Prepared(segments, manifest, folder, done, notes, start_us, started, time_base)


def cuts_own_output(plan: UpscalePlan, opts: SegmentOptions, p: Prepared) -> bool:
    """One local worker, nothing kept and segments that are runs of the graph's frames (at
    its end, or before the tail the join would run): the single-process run makes the
    segments itself (segments.checkpoint) instead of workers and a join."""
    # no pre-pass, no context frames, no --dedupe decisions
    return (opts.executor == "local" and opts.jobs == 1 and not p.done
            and plan.request.runtime != "docker" and "source" not in p.manifest["worker"]
            and all(s.shift is None and s.dedupe_select is None for s in p.segments))


def run_segmented(plan: UpscalePlan, opts: SegmentOptions, on_progress: Progress | None = None,
                  prepared: Prepared | None = None) -> SegmentedResult:
    p = prepared or prepare_segments(plan, opts)
    if cuts_own_output(plan, opts, p):
        return _run_cutting_own_output(plan, p, on_progress)
    folder, done = p.folder, p.done
    todo = [s for s in p.segments if s.index not in done]
    base = sum(d.frames for d in done.values())
    current: dict[int, ProgressUpdate] = {}
    joined: list[ProgressUpdate] = []
    results: list[UpscaleResult] = []

    def progress(index: int, update: ProgressUpdate) -> None:
        current[index] = update
        if on_progress:
            running = tuple(u.fps for u in current.values() if not u.done)
            on_progress("segments", ProgressUpdate(
                base + sum(u.frame for u in current.values()), sum(running), 0.0, "", False,
                running))

    def join_progress(update: ProgressUpdate) -> None:
        joined.append(update)
        if on_progress:
            on_progress("join", update)

    relay = Relay(folder, [s.index for s in p.segments])
    for index in done:  # kept by --resume: the join may take them at once
        relay.ready(index)

    def finished(d: Done, index: int) -> None:
        done[index] = d
        relay.ready(index)
        progress(index, ProgressUpdate(d.frames, 0.0, 0.0, "", True))

    join = join_task(plan, relay, done, p.start_us, results.append,
                     lambda: joined[-1].frame if joined else 0, p.manifest.get("join"))
    route = progress_router(progress, join_progress)

    def run() -> None:
        if opts.executor == "ray":  # the segments there, then the join here
            from ffsr.segments.ray_executor import RayExecutor

            gpus = opts.gpus_per_segment
            if gpus is None:
                gpus = 1.0 if plan.request.device == "cuda" else 0.0
            RayExecutor(opts.ray_address, gpus).run(folder, [s.index for s in todo], finished)
            LocalExecutor(1).run([join], route)
        else:  # the join starts with the first segment done and encodes beside the rest
            ffmpeg = plan.argv[0]
            tasks = [segment_task(folder, p.manifest, s, ffmpeg,
                                  partial(finished, index=s.index)) for s in todo]
            LocalExecutor(opts.jobs + 1).run([join, *tasks], route)

    return _run_and_publish(plan, p, run, relay.stop, results, done, [s.index for s in todo],
                            "The join")


def _run_and_publish(plan: UpscalePlan, p: Prepared, run: Callable[[], None],
                     stop: Callable[[], None], results: list[UpscaleResult],
                     done: dict[int, Done], made: list[int], what: str) -> SegmentedResult:
    """``run`` under ffsr's signal handlers; then, however it ended, ``stop`` (the relay or
    the splitter) and the partial output removed (renamed away when it was published). The
    work folder goes once the output is out."""
    from ffsr.signals import stop_on_signals

    plan.partial.unlink(missing_ok=True)
    try:
        with stop_on_signals():
            run()
    finally:
        stop()
        plan.partial.unlink(missing_ok=True)
    if not results:
        raise FfsrError(f"{what} was stopped before it finished.")
    shutil.rmtree(p.folder, ignore_errors=True)
    result = replace(results[0], seconds=time.monotonic() - p.started)
    return SegmentedResult(result, len(p.segments), made, p.notes,
                           [done[s.index] for s in p.segments])


def _run_cutting_own_output(plan: UpscalePlan, p: Prepared,
                            on_progress: Progress | None) -> SegmentedResult:
    """segments.checkpoint: one ffmpeg, whose progress is the join's bar; the segments' bar
    counts the frames cut (fewer than the output's where the output is interpolated)."""
    from ffsr.segments.checkpoint import Splitter, checkpoint_graph, checkpoint_task

    done: dict[int, Done] = {}
    latest: list[ProgressUpdate] = []
    results: list[UpscaleResult] = []

    def cut(d: Done, index: int) -> None:
        done[index] = d
        if on_progress and latest:  # the last frames are cut after ffmpeg's last report
            on_progress("segments", replace(latest[-1], frame=splitter.frames))

    def progress(_index: int, update: ProgressUpdate) -> None:
        latest[:] = [update]
        if on_progress:
            on_progress("segments", replace(update, frame=splitter.frames))
            on_progress("join", update)

    splitter = Splitter(p.folder, p.segments, cut)
    tail = p.manifest.get("join")
    if tail:  # the tap before what the join would run, in the workers' ticks (segments.after)
        tapped = checkpoint_graph(plan.graph, None, tail["shift"], tail["tail"],
                                  Fraction(*tail["time_base"]))
    else:
        tapped = checkpoint_graph(plan.graph, p.manifest["worker"].get("pix_fmt"),
                                  start_shift(p.time_base, p.start_us))
    task = checkpoint_task(plan, splitter, tapped, results.append,
                           lambda: latest[-1].frame if latest else 0)
    return _run_and_publish(plan, p, lambda: LocalExecutor(1).run([task], progress),
                            splitter.stop, results, done, [s.index for s in p.segments],
                            "The run")
