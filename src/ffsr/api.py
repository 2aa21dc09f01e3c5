"""The Python API, mirroring the CLI: ``ffsr.upscale(...)`` and ``ffsr.graph(...)``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.progress import ProgressUpdate
from ffsr.upscale_job import UpscaleRequest, UpscaleResult, plan_upscale, resolve_cards, run_upscale


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
    if "fps" in options and options["fps"] is not None:
        options["fps"] = Fraction(str(options["fps"]))
    cards = resolve_cards(_models(model), log=lambda _: None)
    return render_graph(cards, GraphOptions(**options))  # type: ignore[arg-type]
