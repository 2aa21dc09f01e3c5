"""The `ffsr` command line: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ffsr.cli_workers import segments_app
from ffsr.completion import model_names, zoo_names
from ffsr.errors import FfsrError

app = typer.Typer(
    name="ffsr",
    help="Neural super-resolution and frame interpolation inside one ffmpeg process.",
    no_args_is_help=True,
    add_completion=True,  # ffsr --install-completion: bash, zsh, fish
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)
app.add_typer(segments_app, name="segments")


def _version(value: bool) -> None:
    if value:
        from ffsr import __version__

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
                                               "(onnx,openvino,torch,tensorflow or none; "
                                               "torch and tensorflow slow every ffmpeg start).")]
    = "onnx,openvino",
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


@app.command("convert-model")
def convert_model_cmd(
    name: Annotated[str | None, typer.Argument(help="Zoo model name (see `ffsr models`).",
                                               autocompletion=zoo_names)] = None,
    checkpoint: Annotated[Path | None, typer.Option(
        help="Your own checkpoint: TF .ckpt directory, .pth, .safetensors, waifu2x .npz, .onnx "
             "or a frozen TensorFlow .pb.")]
    = None,
    arch: Annotated[str | None, typer.Option(help="Architecture (espcn, srcnn for TF "
                                                  "checkpoints; detected for PyTorch and waifu2x "
                                                  "ones).")] = None,
    scale: Annotated[int | None, typer.Option(help="Scale the weights must have.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", "-o",
                                                 help="Where to write (default: ~/.cache/ffsr/models).")]
    = None,
    backends: Annotated[str, typer.Option(help="Backends to convert for: onnx,openvino,torch,"
                                               "tensorflow (openvino reads the .onnx).")]
    = "onnx,openvino,torch,tensorflow",
    verify_clip: Annotated[Path | None, typer.Option(help="Clip whose frames verify the outputs.")]
    = None,
    model_name: Annotated[str | None, typer.Option("--name", help="Name of the converted model.")]
    = None,
    runtime: Annotated[str, typer.Option(help="auto (host if the frameworks are installed, else "
                                              "the ffsr image), local or docker.")] = "auto",
    image: Annotated[str | None, typer.Option(help="Image for --runtime docker.")] = None,
    input_tensor: Annotated[str | None, typer.Option(
        help="Frozen .pb only: the placeholder FFmpeg feeds, where the graph has several.")] = None,
    output_tensor: Annotated[str | None, typer.Option(
        help="Frozen .pb only: the op that gives the upscaled frame, where the graph ends in "
             "several.")] = None,
) -> None:
    """Convert a checkpoint into FFmpeg-loadable models, each verified against its source."""
    from ffsr.convert_model import convert_checkpoint, convert_zoo_model

    if bool(name) == bool(checkpoint):
        raise FfsrError("Give either a zoo model name or --checkpoint PATH.")
    log = console.print
    if checkpoint:
        card = convert_checkpoint(checkpoint, name=model_name, arch=arch, scale=scale,
                                  out_dir=out_dir, backends=_split(backends),
                                  verify_clip=verify_clip, runtime=runtime, image=image, log=log,
                                  tensors=(input_tensor, output_tensor))
    elif input_tensor or output_tensor:
        raise FfsrError("--input-tensor/--output-tensor name the tensors of a frozen .pb given "
                        "with --checkpoint.")
    else:
        assert name is not None
        card = convert_zoo_model(name, out_dir, backends=_split(backends),
                                 verify_clip=verify_clip, runtime=runtime, image=image, log=log)
    console.print(f"[green]converted[/] {card.name} x{card.scale} ({card.color.upper()}): "
                  f"{', '.join(card.files)}")
    print(card.directory)


ModelOpt = Annotated[list[str], typer.Option("--model", "-m", help=(
    "Model name (zoo or converted) or card path; repeat to chain models, e.g. a 1x "
    "clean-up model then a 2x model; none: no model, only --fps."), autocompletion=model_names)]
BackendOpt = Annotated[str, typer.Option(help="DNN backend: auto (on the CPU: the fastest for "
                                               "the model here, measured once), openvino, onnx, "
                                               "torch or tensorflow.")]
PrecisionOpt = Annotated[str, typer.Option(help="Inference precision: auto (bf16 where the CPU "
                                                "has bf16 units, with openvino, for models that "
                                                "keep 50 dB in it), f32 or bf16.")]
DeviceOpt = Annotated[str, typer.Option(help="cpu or cuda (checked in ffmpeg's log).")]
FpsOpt = Annotated[str | None, typer.Option(help="New frame rate, e.g. 60 or 30000/1001.")]
InterpOpt = Annotated[str, typer.Option(help="minterpolate (motion compensated), framerate "
                                             "(blend), fps (duplicate/drop) or rife (neural: "
                                             "HD v3 for 2x, v4 for other ratios).")]
DedupeOpt = Annotated[bool, typer.Option(help="mpdecimate: drop duplicate frames first; with "
                                              "--interpolation rife, RIFE redraws drawings held "
                                              "2 frames (--fps = the input's rate).")]
FormOpt = Annotated[str, typer.Option("--form", help="Y models: compact (dnn_processing on "
                                                     "yuv), explicit (planes) or sr (sr filter).")]


def _fps(value: str | None, flag: str = "--fps") -> Fraction | None:
    if value is None:
        return None
    try:
        fps = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise FfsrError(f"{flag} {value} is not a frame rate (use e.g. 60 or 30000/1001).") from None
    if fps <= 0:
        raise FfsrError(f"{flag} must be positive.")
    return fps


@app.command()
def upscale(
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT", help="Input video, GIF or image sequence; several files, a folder or "
        "a quoted glob make a batch (then -o is a folder and names are kept).")],
    model: ModelOpt,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file "
                                                "(.mp4 .mkv .mov .webm .gif .png .apng .y4m), or folder "
                                                "for a batch.")] = None,
    scale: Annotated[int | None, typer.Option(help="Required total scale (checked against "
                                                   "the models).")] = None,
    width: Annotated[int | None, typer.Option(help="Final width (lanczos after the models).")]
    = None,
    height: Annotated[int | None, typer.Option(help="Final height.")] = None,
    fps: FpsOpt = None,
    interpolation: InterpOpt = "minterpolate",
    interpolate_after: Annotated[bool, typer.Option(help="Interpolate after upscaling "
                                                         "(slower, on more pixels).")] = False,
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    device: DeviceOpt = "cpu",
    form: FormOpt = "compact",
    deinterlace: Annotated[bool, typer.Option(help="bwdif before the models.")] = False,
    dedupe: DedupeOpt = False,
    encoder: Annotated[str | None, typer.Option(help="Video encoder: libx264 (default for "
                                                     ".mp4/.mkv/.mov), libx265, libsvtav1, "
                                                     "libvpx-vp9 (default for .webm), ffv1 …")] = None,
    pix_fmt: Annotated[str | None, typer.Option(help="Output pixel format, e.g. yuv420p10le "
                                                     "(10-bit output from 8-bit processing).")]
    = None,
    crf: Annotated[int | None, typer.Option(help="Quality, lower is better (default: x264 18, "
                                                 "x265 20, SVT-AV1 30, VP9 31, NVENC 19).")] = None,
    preset: Annotated[str | None, typer.Option(help="Speed preset (default: x264/x265 medium, "
                                                    "SVT-AV1 8, VP9 cpu-used 4).")] = None,
    runtime: Annotated[str, typer.Option(help="local (ffsr-built ffmpeg) or docker (the ffsr "
                                              "image).")] = "local",
    image: Annotated[str | None, typer.Option(help="Docker image for --runtime docker.")] = None,
    frames: Annotated[int | None, typer.Option(help="Stop after N frames (preview).")] = None,
    segments: Annotated[int | None, typer.Option(help="Cut at keyframes into N segments, each "
                                                      "its own ffmpeg, then join (same output).")]
    = None,
    segment_length: Annotated[float | None, typer.Option(
        help="Instead of --segments N: segments of at most about this many seconds (an hour "
             "at 60 gives 60 segments; resume redoes at most one).")] = None,
    jobs: Annotated[int, typer.Option(help="Segments that run at once (--segments).")] = 1,
    resume: Annotated[bool, typer.Option(help="Keep the finished segments of an interrupted "
                                              "--segments run.")] = False,
    executor: Annotated[str, typer.Option(help="Where segments run: local (processes here), "
                                               "ray (a Ray cluster) or none (plan only, for "
                                               "`ffsr segments work` under Kubernetes or "
                                               "Slurm).")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster to join (default: "
                                                         "$RAY_ADDRESS, else a local one).")]
    = None,
    gpus_per_segment: Annotated[float | None, typer.Option(help="GPUs per Ray task (default: 1 "
                                                                "with --device cuda, else 0).")]
    = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the ffmpeg command, run nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout "
                                                          "(keys and exit codes: README).")] = False,
) -> None:
    """Upscale a video with neural models in one ffmpeg process (audio and subtitles kept)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ffsr.batch import collect_batch
    from ffsr.progress import ProgressUpdate
    from ffsr.result_json import json_errors
    from ffsr.upscale_job import UpscaleRequest, plan_upscale, run_upscale

    with json_errors(json_out):
        batch = collect_batch(inputs, output)
    input, output = batch.items[0].input, batch.items[0].output
    if runtime not in ("local", "docker"):
        raise FfsrError(f"Unknown runtime '{runtime}'; choose local or docker.")
    segmented = resume or segments is not None or segment_length is not None
    req = UpscaleRequest(
        input=input, models=model, output=output, backend=backend, precision=precision,
        device=device, scale=scale,
        width=width, height=height, fps=_fps(fps), interpolation=interpolation,
        interpolate_after=interpolate_after, y_form=form, deinterlace=deinterlace,
        dedupe=dedupe, encoder=encoder, pix_fmt=pix_fmt, crf=crf, preset=preset,
        overwrite=overwrite, runtime=runtime, image=image, frames=frames,
        segments_in_image=runtime == "docker" and segmented)
    if segments is not None and segment_length is not None:
        raise FfsrError("Pass --segments N or --segment-length SECONDS, not both.")
    if segmented and (batch.is_batch or json_out):
        raise FfsrError("--segments and --resume take one input and no --json.")
    if executor != "local" and not segmented:
        raise FfsrError("--executor runs segments: pass --segments N (or --resume).")
    if batch.is_batch or json_out:
        from ffsr.cli_batch import run_batch_cli

        with json_errors(json_out):
            status = run_batch_cli(req, batch, console, json_out=json_out, dry_run=dry_run)
        raise typer.Exit(status)
    plan = plan_upscale(req, log=console.print)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    if dry_run:
        print(plan.command_line())
        return
    if segmented:
        from ffsr.cli_segments import run_segments_cli

        if segment_length is not None:
            from ffsr.segments.frames import count_for_length

            segments = count_for_length(plan.info.duration, segment_length)
        run_segments_cli(plan, segments, jobs, resume, console, executor, ray_address,
                         gpus_per_segment)
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:>6.1f} fps"), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), console=console,
                  transient=False, refresh_per_second=2) as progress:
        what = f"{plan.backend}/{plan.precision}" if plan.precision else plan.backend
        what = what if plan.cards else plan.request.interpolation  # -m none: no model runs
        task = progress.add_task(f"{what} {plan.request.input.name}", total=plan.expected_frames,
                                 fps=0.0)

        def on_progress(update: ProgressUpdate) -> None:
            progress.update(task, completed=update.frame, fps=update.fps)

        result = run_upscale(plan, on_progress)
    console.print(f"[green]wrote[/] {result.output} ({result.frames} frames in "
                  f"{result.seconds:.1f}s)")


@app.command()
def graph(
    model: ModelOpt,
    fps: FpsOpt = None,
    interpolation: InterpOpt = "minterpolate",
    backend: BackendOpt = "auto",
    precision: PrecisionOpt = "auto",
    device: DeviceOpt = "cpu",
    form: FormOpt = "compact",
    width: Annotated[int | None, typer.Option(help="Final width.")] = None,
    height: Annotated[int | None, typer.Option(help="Final height.")] = None,
    alpha: Annotated[bool, typer.Option(help="Keep an alpha channel (GIF/PNG inputs).")] = False,
    dedupe: DedupeOpt = False,
    input_rate: Annotated[str | None, typer.Option(help="The input's frame rate (e.g. "
                                                   "24000/1001): --interpolation rife makes "
                                                   "any ratio but 2x from it (RIFE v4).")] = None,
    in_label: Annotated[str | None, typer.Option(help="Input pad label, e.g. 0:v.")] = None,
    out_label: Annotated[str | None, typer.Option(help="Output pad label, e.g. up.")] = None,
    command: Annotated[bool, typer.Option(help="Print a complete ffmpeg command instead "
                                               "(needs --input).")] = False,
    input: Annotated[Path | None, typer.Option("--input", "-i", help="Input for --command.")]
    = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output for --command.")]
    = None,
    runtime: Annotated[str, typer.Option(help="local, or docker: model paths inside the ffsr "
                                              "image; with --command the whole `docker run` line.")]
    = "local",
    image: Annotated[str | None, typer.Option(help="Image for --runtime docker --command.")] = None,
    model_dir: Annotated[str | None, typer.Option(help="Write model paths as DIR/<model>/<file> "
                                                       "(relative stays relative): a graph for "
                                                       "another machine.")] = None,
) -> None:
    """Print the filter graph (or the whole ffmpeg command) that `ffsr upscale` runs."""
    from ffsr.docker_command import command_line, graph_model_dir, mounts_hint, output_note

    model_root = graph_model_dir(runtime, model_dir, command)
    from ffsr.ffmpeg_tools import capabilities, choose_ffmpeg
    from ffsr.filtergraph import GraphOptions, render_graph
    from ffsr.precision import resolve_precision
    from ffsr.upscale_job import (
        UpscaleRequest,
        choose_backend,
        needs_backends,
        plan_upscale,
        requested_backend,
        resolve_cards,
    )

    if command:
        if input is None:
            raise FfsrError("--command needs --input (and optionally --output).")
        req = UpscaleRequest(input=input, models=model, output=output, backend=backend,
                             precision=precision, device=device, fps=_fps(fps), interpolation=interpolation,
                             dedupe=dedupe, y_form=form, width=width, height=height, overwrite=True,
                             runtime=runtime, image=image)
        plan = plan_upscale(req, log=console.print)
        if note := output_note(plan):
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        print(command_line(plan))
        return
    cards = resolve_cards(model, log=console.print)
    from ffsr.interpolation.rife import graph_model

    interpolator = graph_model(_fps(fps), interpolation, runtime, log=console.print,
                               input_rate=_fps(input_rate, "--input-rate"), dedupe=dedupe)
    ffmpeg = choose_ffmpeg(needs_backends(backend, form, cards)).ffmpeg
    chosen = choose_backend(requested_backend(backend, form, cards), cards, capabilities(ffmpeg),
                            device, ffmpeg if runtime == "local" else None, precision, console.print)
    print(render_graph(cards, GraphOptions(
        backend=chosen, device=device, precision=resolve_precision(precision, chosen, device, cards),
        y_form=form, fps=_fps(fps), interpolation=interpolation,
        width=width, height=height, alpha=alpha, dedupe=dedupe, in_label=in_label,
        out_label=out_label,
        model_dir=model_root, interpolator_model=interpolator,
        input_rate=_fps(input_rate, "--input-rate"))))
    if runtime == "docker":
        console.print(mounts_hint(cards), highlight=False)


@app.command("env")
def env_cmd(
    shell: Annotated[str | None, typer.Option(help="bash, zsh, fish or sh (default: the shell running ffsr, "
                                              "else $SHELL).")]
    = None,
    unset: Annotated[bool, typer.Option("--unset", help="Take ffsr's ffmpeg off PATH again.")]
    = False,
) -> None:
    """Shell code that puts ffsr's ffmpeg and ffprobe first on PATH, for your own scripts:
    eval "$(ffsr env)" (fish: ffsr env | source)."""
    from ffsr.shell_env import detect_shell, env_script, parent_shell

    print(env_script(detect_shell(shell, parent=parent_shell()), unset=unset), end="")


@app.command()
def bench(
    input: Annotated[Path, typer.Argument(help="Your clip (its first --frames frames are used).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (zoo or converted) "
                                                              "or card path.")],
    backend: Annotated[str, typer.Option(help="ffsr backend(s): auto, all, or a comma list of "
                                              "onnx,torch,tensorflow.")] = "auto",
    frames: Annotated[int, typer.Option(help="Frames each path processes.")] = 30,
    plot: Annotated[Path | None, typer.Option(help="Also write a bar chart (PNG, needs "
                                                   "matplotlib).")] = None,
) -> None:
    """Time ffsr against a Python frame pipeline, a PNG round trip, the model alone and
    plain scaling on your clip; prints a markdown table (see benchmarks/ for the full set)."""
    from ffsr.bench import (
        bench_clip,
        choose_bench_backends,
        find_tools,
        measurement_table,
        named_backends,
        plot_measurements,
        summarize,
        summary_lines,
    )
    from ffsr.ffmpeg_tools import capabilities
    from ffsr.upscale_job import resolve_cards

    card = resolve_cards([model], log=console.print)[0]
    tools = find_tools(named_backends(backend))
    backends = choose_bench_backends(backend, card, capabilities(tools.ffmpeg))
    ms = bench_clip(input, card, backends, frames, log=console.print, tools=tools)
    print(measurement_table(ms) + "\n")
    for b in backends:
        print(summary_lines(summarize(ms, b), b))
    if plot:
        plot_measurements(ms, plot, f"{card.name} on {input.name}, {frames} frames")
        console.print(f"[green]wrote[/] {plot}")


@app.command()
def models() -> None:
    """List the model zoo and which models are already converted."""
    from ffsr.model_card import find_card
    from ffsr.zoo import zoo

    for m in zoo().values():
        try:
            card = find_card(m.name)
            status = f"converted: {', '.join(card.files)}"
        except FfsrError:
            status = "not converted"
        print(f"{m.name:<25} x{m.scale} {m.color.upper():<3} {m.arch:<18} {status:<36} {m.title}")


@app.command("build-image")
def build_image_cmd(
    flavor: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when an NVIDIA "
                                                    "GPU is visible, else cpu).")] = None,
    tag: Annotated[str | None, typer.Option(help="Image tag (default: ffsr:<ffmpeg version>-<flavor>).")]
    = None,
    ffmpeg_source: Annotated[str, typer.Option(help="FFmpeg source: 'debian' (Debian's archive), a "
                                                    "tarball path or a URL; sha256 is checked.")]
    = "debian",
    backends: Annotated[str, typer.Option(help="DNN backends, comma-separated "
                                               "(onnx,openvino,torch,tensorflow).")]
    = "onnx,openvino,torch,tensorflow",
    ca_bundle: Annotated[Path | None, typer.Option(help="CA bundle pip trusts inside the build "
                                                        "(default: the one pip on this machine "
                                                        "uses).")] = None,
    wheelhouse: Annotated[Path | None, typer.Option(help="Directory of local wheels pip prefers "
                                                         "(default: pip's local find-links).")] = None,
    host_pip: Annotated[bool, typer.Option(help="Carry this machine's pip configuration (CA "
                                                "bundle, local wheels and indexes) into the "
                                                "build.")] = True,
    base_image: Annotated[str | None, typer.Option(help="Base image (default: ffsr-base:<suite>, "
                                                        "made from Debian's archive when missing).")]
    = None,
    jobs: Annotated[int | None, typer.Option(help="Parallel compile jobs in the builder stage.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rebuild every layer.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the rendered Dockerfile and exit.")]
    = False,
) -> None:
    """Build the ffsr Docker image: FFmpeg with DNN backends, runtimes, non-root, ffmpeg entrypoint."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ffsr.image import ImageConfig, build_image, default_flavor, pip_setup, render_dockerfile
    from ffsr.image import Progress as BuildEvent

    config = ImageConfig(flavor=flavor or default_flavor(), tag=tag, backends=_split(backends),
                         ffmpeg_source=ffmpeg_source, base_image=base_image, ca_bundle=ca_bundle,
                         wheelhouse=wheelhouse, host_pip=host_pip, no_cache=no_cache, jobs=jobs)
    if dry_run:
        pip = pip_setup(config)
        for note in pip.notes:
            console.print(f"pip: {note}", highlight=False)
        print(render_dockerfile(config, pip), end="")
        return
    started = time.monotonic()
    columns = (SpinnerColumn(), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"building {config.image_tag}", total=None)

        def on_progress(event: BuildEvent) -> None:
            console.print(f"[dim]{time.monotonic() - started:6.0f}s[/] {event.text}", highlight=False)
            progress.update(task, description=event.text)

        result = build_image(config, on_progress=on_progress)
    verb = "reused (inputs unchanged)" if result.reused else f"built in {result.seconds:.0f}s"
    console.print(f"[green]{result.tag}[/] {verb}, image size {result.size_gb:.2f} GB "
                  f"(log: {result.log_path})", highlight=False)
    print(result.tag)


def main() -> None:
    """Console entry point: user errors become one sentence and a non-zero exit; a stop
    signal (after ffmpeg and any container are stopped) exits with 128 + its number."""
    from ffsr.signals import Stopped, stop_on_signals

    try:
        with stop_on_signals():
            app()
    except FfsrError as e:
        from rich.markup import escape

        console.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(e.exit_code)
    except Stopped as e:
        console.print(f"[red]stopped[/] ({e.name})", highlight=False)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]")
        sys.exit(130)
