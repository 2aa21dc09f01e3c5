"""The Python API, mirroring the CLI: ``ffsr.upscale(...)`` and ``ffsr.graph(...)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.progress import ProgressUpdate
from ffsr.upscale_job import UpscaleRequest, UpscaleResult, plan_upscale, resolve_cards, run_upscale

if TYPE_CHECKING:
    from ffsr.batch import BatchOutcome


def _models(model: str | Sequence[str]) -> list[str]:
    return [model] if isinstance(model, str) else list(model)


def upscale(input: str | Path, model: str | Sequence[str], output: str | Path | None = None, *,
            on_progress: Callable[[ProgressUpdate], None] | None = None,
            **options: object) -> UpscaleResult:
    """Upscale ``input`` with one model or a chain in one ffmpeg process.

    ``options`` are UpscaleRequest fields (backend, device, scale, fps, width, height, ...).
    """
    if "fps" in options and options["fps"] is not None:
        options["fps"] = Fraction(str(options["fps"]))
    req = UpscaleRequest(input=Path(input), models=_models(model),
                         output=Path(output) if output else None, **options)  # type: ignore[arg-type]
    return run_upscale(plan_upscale(req), on_progress)


def graph(model: str | Sequence[str], **options: object) -> str:
    """The filter graph ``ffsr upscale`` would run, for embedding in your own commands.

    ``options`` are GraphOptions fields (backend, device, fps, y_form, in_label, ...).
    """
    for key in ("fps", "input_rate"):
        if options.get(key) is not None:
            options[key] = Fraction(str(options[key]))
    cards = resolve_cards(_models(model), log=lambda _: None)
    if options.get("interpolation") == "rife" and options.get("fps") and \
            not options.get("interpolator_model"):
        from ffsr.interpolation.rife import model_name, rife_model

        name = model_name(options["fps"], options.get("input_rate"),  # type: ignore[arg-type]
                          bool(options.get("dedupe")))
        options["interpolator_model"] = str(rife_model(log=lambda _: None, name=name).path)
    return render_graph(cards, GraphOptions(**options))  # type: ignore[arg-type]


def upscale_stream(stream: Any, model: str | Sequence[str], **options: object) -> Any:
    """An ffmpeg-python stream with ffsr's model step(s) applied (the graph of ``graph()``):
    ``ffsr.upscale_stream(ffmpeg.input("in.mp4").video, "espcn")``."""
    from ffsr.ffmpeg_python_node import upscale_stream as node

    return node(stream, model, **options)


def ffmpeg_path() -> str:
    """The ffmpeg ffsr runs (its own build), for ``.run(cmd=ffsr.ffmpeg_path())``."""
    from ffsr.ffmpeg_tools import choose_ffmpeg

    return str(choose_ffmpeg().ffmpeg)


def upscale_batch(inputs: Sequence[str | Path], model: str | Sequence[str],
                  output_dir: str | Path | None = None, **options: object) -> list[BatchOutcome]:
    """Upscale several files, folders or globs like ``ffsr upscale a.mp4 clips/ -o out/``;
    a failed file is an outcome with ``error`` set, not an exception."""
    from ffsr.batch import collect_batch, run_batch

    batch = collect_batch([Path(p) for p in inputs], Path(output_dir) if output_dir else None,
                          force=True)
    if "fps" in options and options["fps"] is not None:
        options["fps"] = Fraction(str(options["fps"]))
    req = UpscaleRequest(input=batch.items[0].input, models=_models(model),
                         **options)  # type: ignore[arg-type]
    return run_batch(req, batch)
