"""`ffsr upscale --segments/--resume` at the terminal: a bar for the whole-clip pre-pass
where the graph has one, one over all segments (the workers' summed fps, and each worker's
while several run), then one for the join."""

from __future__ import annotations

from rich.console import Console

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate
from ffsr.upscale_job import UpscalePlan


def per_worker(fps: tuple[float, ...]) -> str:
    """Each running worker's speed, so a slow GPU or node shows ("(12.1 + 3.4)")."""
    return f"({' + '.join(f'{f:.1f}' for f in fps)})" if len(fps) > 1 else ""


def run_segments_cli(plan: UpscalePlan, segments: int | None, jobs: int, resume: bool,
                     console: Console, executor: str = "local", ray_address: str | None = None,
                     gpus_per_segment: float | None = None) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from ffsr.segments.job import SegmentOptions, prepare_segments, run_segmented, work_folder
    from ffsr.segments.manifest import read_manifest

    if segments is None:  # --resume alone: as many segments as the interrupted run asked for
        saved = read_manifest(work_folder(plan.output)) or {}
        if not isinstance(saved.get("requested_segments"), int):
            raise FfsrError(f"Nothing to resume for {plan.output}; run with --segments N.")
        segments = int(saved["requested_segments"])
    if segments < 1:
        raise FfsrError("--segments must be at least 1.")
    if jobs < 1:
        raise FfsrError("--jobs must be at least 1.")
    opts = SegmentOptions(segments, jobs, resume, executor, ray_address, gpus_per_segment)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[fps]:>6.1f} fps"), TextColumn("{task.fields[workers]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar: list[TaskID] = []
        req = plan.request  # the pre-pass makes the new rate only where it interpolates
        pre_total = plan.expected_frames if req.fps and not req.interpolate_after else \
            plan.info.frames

        def on_prepass(_: int, update: ProgressUpdate) -> None:
            if not bar:  # only once it runs: refusals come before any bar
                bar.append(progress.add_task("pre-pass (whole clip, once)", total=pre_total,
                                             fps=0.0, workers=""))
            progress.update(bar[0], completed=update.frame, fps=update.fps)

        prepared = prepare_segments(plan, opts, on_prepass)
    if executor == "none":
        todo = [s.index for s in prepared.segments if s.index not in prepared.done]
        folder = prepared.folder.absolute()
        console.print(f"planned {len(prepared.segments)} segments in {folder}; {len(todo)} to "
                      f"make: run `ffsr segments work {folder} --index I` for each (or "
                      "`ffsr segments render-k8s/render-slurm`), then this command with --resume "
                      "instead of --executor none to join.", highlight=False)
        return
    # What the workers write: each segment's frames, or output slots where they interpolate
    made = plan.expected_frames if any(s.shift is not None for s in prepared.segments) else \
        sum(s.frames for s in prepared.segments)
    with Progress(*columns, console=console) as progress:
        bars = {"segments": progress.add_task(f"{segments} segments {plan.request.input.name}",
                                              total=made, fps=0.0, workers=""),
                "join": progress.add_task("join", total=plan.expected_frames, fps=0.0,
                                          workers="")}

        def on_progress(phase: str, update: ProgressUpdate) -> None:
            progress.update(bars[phase], completed=update.frame, fps=update.fps,
                            workers=per_worker(update.worker_fps))

        out = run_segmented(plan, opts, on_progress, prepared)
    for note in out.notes:
        console.print(f"[yellow]note:[/] {note}")
    if executor == "ray":  # which node and GPU made what
        for i in out.made:
            console.print(f"segment {i}: {out.records[i].describe()}", highlight=False)
    kept = out.segments - len(out.made)
    console.print(f"[green]wrote[/] {out.result.output} ({out.result.frames} frames in "
                  f"{out.result.seconds:.1f}s; {len(out.made)} of {out.segments} segments made"
                  f"{f', {kept} kept' if kept else ''})")
