"""`ffsr segments …`: the worker that makes one segment by index (what a Ray task, a
Kubernetes Indexed Job pod or a Slurm array task runs) and the scheduler manifests that run
it, and what a planned job has made so far. Parsing and printing only: the work lives in
ffsr.segments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

segments_app = typer.Typer(help="Run one segment of a planned --segments job; render "
                                "Kubernetes and Slurm manifests that run them all.",
                           no_args_is_help=True)

FolderArg = Annotated[Path, typer.Argument(help="The work folder (.<output>.ffsr-segments) "
                                                "that `ffsr upscale --segments N` planned.")]
GpusOpt = Annotated[int, typer.Option(help="GPUs per segment.")]
CpusOpt = Annotated[int, typer.Option(help="CPUs per segment.")]
ParallelOpt = Annotated[int | None, typer.Option(help="Segments at once (default: all).")]
FfsrOpt = Annotated[str, typer.Option(help="The ffsr command on the workers.")]


@segments_app.command("work")
def work(
    folder: FolderArg,
    index: Annotated[int | None, typer.Option(help="Segment index (default: "
                                                   "$JOB_COMPLETION_INDEX, then "
                                                   "$SLURM_ARRAY_TASK_ID).")] = None,
) -> None:
    """Make one segment (skipped when it is already done); the join is `ffsr upscale … --resume`."""
    from rich.console import Console

    from ffsr.segments.work import run_segment

    done = run_segment(folder, index)
    Console(stderr=True).print(f"[green]segment done:[/] {done.describe()}", highlight=False)


@segments_app.command("status")
def status(folder: FolderArg) -> None:
    """Which segments are done (where, when, in how long) and which are still to make."""
    from ffsr.segments.work import job_status

    states = job_status(folder)
    for i, (done, why) in enumerate(states):
        print(f"segment {i}: " + (f"done, {done.describe()}" if done else why or "to make"))
    made = sum(1 for done, _ in states if done)
    left = "join with `ffsr upscale … --resume`" if made == len(states) else \
        "make the rest with `ffsr segments work FOLDER --index I`, then join with " \
        "`ffsr upscale … --resume`"
    print(f"{made} of {len(states)} segments done; {left}.")


def _planned(folder: Path) -> int:
    from ffsr.segments.work import planned_segments

    return len(planned_segments(folder))


@segments_app.command("render-k8s")
def render_k8s_cmd(
    folder: FolderArg,
    image: Annotated[str | None, typer.Option(help="Container image with ffsr (default: "
                                                   "`ffsr build-image`'s tag).")] = None,
    claim: Annotated[str, typer.Option(help="PersistentVolumeClaim of the shared storage.")]
    = "ffsr-shared",
    mount: Annotated[Path | None, typer.Option(help="Where the claim is mounted (default: the "
                                                    "work folder's parent).")] = None,
    gpus: GpusOpt = 0, cpus: CpusOpt = 1, parallelism: ParallelOpt = None,
) -> None:
    """Print a Kubernetes Indexed Job whose pod I runs segment I."""
    from ffsr.segments.deploy import DeployOptions, render_k8s

    folder = folder.absolute()
    print(render_k8s(DeployOptions(folder, _planned(folder), image=image, gpus=gpus, cpus=cpus,
                                   parallelism=parallelism, claim=claim, mount=mount)), end="")


@segments_app.command("render-slurm")
def render_slurm_cmd(
    folder: FolderArg,
    partition: Annotated[str | None, typer.Option(help="Slurm partition.")] = None,
    gpus: GpusOpt = 0, cpus: CpusOpt = 1, parallelism: ParallelOpt = None,
    ffsr: FfsrOpt = "ffsr",
) -> None:
    """Print an sbatch script whose array task I runs segment I."""
    from ffsr.segments.deploy import DeployOptions, render_slurm

    folder = folder.absolute()
    print(render_slurm(DeployOptions(folder, _planned(folder), gpus=gpus, cpus=cpus,
                                     parallelism=parallelism, partition=partition, ffsr=ffsr)),
          end="")
