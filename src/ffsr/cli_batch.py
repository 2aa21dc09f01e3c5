"""The terminal side of `ffsr upscale` batches and --json: a progress line per file plus a
total, one sentence per failed file, a summary, and the exit status. The work is in batch."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ffsr.batch import Batch, BatchOutcome, exit_status, run_batch, summary
from ffsr.progress import ProgressUpdate
from ffsr.result_json import batch_json
from ffsr.upscale_job import UpscalePlan, UpscaleRequest


def run_batch_cli(req: UpscaleRequest, batch: Batch, console: Console, *, json_out: bool,
                  dry_run: bool) -> int:
    """Run the batch with live progress on ``console``; returns the exit status."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    many = len(batch.items) > 1
    with Progress(*columns, console=console, transient=False, disable=dry_run) as progress:
        total = progress.add_task("total", total=len(batch.items), rate="files") if many else None
        tasks: dict[int, TaskID] = {}

        def on_plan(i: int, plan: UpscalePlan) -> None:
            for note in plan.notes:
                console.print(f"[yellow]note:[/] {plan.request.input.name}: {note}", highlight=False)
            if dry_run:
                print(plan.command_line())
                return
            what = f"{plan.backend}/{plan.precision}" if plan.precision else plan.backend
            tasks[i] = progress.add_task(f"{what} {plan.request.input.name}",
                                         total=plan.expected_frames, rate="")

        def on_progress(i: int, update: ProgressUpdate) -> None:
            progress.update(tasks[i], completed=update.frame, rate=f"{update.fps:6.1f} fps")

        def on_done(i: int, outcome: BatchOutcome) -> None:
            if outcome.error:
                if i in tasks:
                    progress.update(tasks[i], description=f"[red]failed[/] {outcome.item.input.name}")
                console.print(f"[red]failed:[/] {outcome.item.input.name}: {outcome.error}",
                              highlight=False)
            elif outcome.result and not json_out:
                console.print(f"[green]wrote[/] {outcome.result.output} ({outcome.result.frames} "
                              f"frames in {outcome.result.seconds:.1f}s)", highlight=False)
            if total is not None:
                progress.advance(total)

        outcomes = run_batch(req, batch, log=console.print, on_plan=on_plan,
                             on_progress=on_progress, on_done=on_done, dry_run=dry_run)
    if many:
        console.print(summary(outcomes), highlight=False)
    if json_out:
        print(batch_json(outcomes, batch.is_batch))
    if not batch.is_batch and outcomes[0].error:
        return outcomes[0].error.exit_code
    return exit_status(outcomes)
