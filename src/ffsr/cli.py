"""The `ffsr` command line: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.console import Console

from ffsr import __version__
from ffsr.errors import FfsrError

app = typer.Typer(
    name="ffsr",
    help="Neural super-resolution and frame interpolation inside one ffmpeg process.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"ffsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print ffsr's version and exit.")] = False,
) -> None:
    """ffsr: neural upscaling in one ffmpeg process."""


def _split(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "none")


@app.command("build-ffmpeg")
def build_ffmpeg_cmd(
    backends: Annotated[str, typer.Option(help="DNN backends to compile in, comma-separated "
                                               "(onnx,torch,tensorflow or none).")]
    = "onnx,torch,tensorflow",
    cuda: Annotated[bool, typer.Option(help="Link CUDA LibTorch and NVENC/NVDEC.")] = False,
    source: Annotated[str, typer.Option(help="FFmpeg source: 'debian' (Debian's archive), "
                                             "a tarball path or a URL; sha256 is checked.")]
    = "debian",
    jobs: Annotated[int | None, typer.Option(help="Parallel compile jobs.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the cache has this build.")]
    = False,
) -> None:
    """Build FFmpeg with DNN backends natively into ~/.cache/ffsr (no-op when cached)."""
    from ffsr.ffmpeg_build import BuildConfig, build_ffmpeg, cached_build

    config = BuildConfig(backends=_split(backends), cuda=cuda, source=source)
    if not force and (done := cached_build(config)):
        print(done)
        console.print("[green]already built[/] (use --force to rebuild)")
        return
    started = time.monotonic()
    with console.status("building FFmpeg") as status:
        def on_phase(phase: str, text: str) -> None:
            elapsed = time.monotonic() - started
            console.print(f"[dim]{elapsed:6.0f}s[/] [bold]{phase}[/] {text}")
            status.update(f"{phase}: {text}")

        ffmpeg = build_ffmpeg(config, jobs=jobs, force=force, on_phase=on_phase)
    console.print(f"[green]built in {time.monotonic() - started:.0f}s[/]")
    print(ffmpeg)


@app.command()
def doctor() -> None:
    """Say which ffmpeg ffsr uses, what it can do, and whether Docker and a GPU are there."""
    from ffsr.doctor import run_doctor

    report = run_doctor()
    for check in report.checks:
        mark = "[green]ok[/]  " if check.ok else "[red]no[/]  "
        console.print(f"{mark} [bold]{check.name:<18}[/] {check.detail}", highlight=False)
    if not report.can_upscale:
        console.print("[red]ffsr cannot upscale with this setup.[/]")
        raise typer.Exit(1)


def main() -> None:
    """Console entry point: user errors become one sentence and a non-zero exit."""
    try:
        app()
    except FfsrError as e:
        console.print(f"[red]error:[/] {e}", highlight=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        sys.exit(130)
