"""RIFE inside the graph (stock filters, no FFmpeg patch): the converted side-by-side model
and the rules for using it.

The HD v3 network makes the frame halfway between two frames (t = 0.5), so it only
doubles the frame rate; RIFE v4 (``rife-v4``) takes a timestep and makes every other ratio
(model_name decides).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.paths import MODELS_DIR, converted_models_dir

NAME = "rife-hdv3"
V4 = "rife-v4"
LAYOUTS = {NAME: "1x3xHx(2W) (frame n | frame n+1) -> 1x3xHxW",
           V4: "1x3xHx(3W) (frame a | frame b | t-band: R = k/255, G = q/255, t = k/q) -> 1x3xHxW"}
"""The converted interpolators and the one image each takes."""
RATIO = 2
"""Output frames per input frame (HD v3 has no timestep input)."""
CARD_SUFFIX = ".interp.json"


@dataclass(frozen=True)
class Interpolator:
    """A converted interpolator: the ONNX file FFmpeg's onnx backend loads, and its check."""

    name: str
    path: Path
    sha256: str
    fidelity: dict[str, float]


def model_name(fps: Fraction, input_rate: Fraction | None, dedupe: bool = False) -> str:
    """HD v3 for exactly 2x (smaller, ~2x faster than v4 on the CPU, already verified) and
    for --dedupe (which doubles the drawings) or an unknown input rate; v4 for any other
    ratio. The choice matches ffsr.filtergraph.rife_ratio."""
    if dedupe or not input_rate or fps == RATIO * input_rate:
        return NAME
    return V4


def check_rate(fps: Fraction, input_rate: Fraction | None, dedupe: bool = False,
               size: tuple[int, int] | None = None) -> None:
    """Refuse a target rate RIFE cannot make from this input: with --dedupe HD v3 doubles
    the drawings, held 2 frames each, back to the input's rate; at other ratios v4's t-band
    (timed.py) needs more pixels than the reduced ratio's denominator."""
    if dedupe and input_rate and fps != input_rate:
        raise FfsrError(f"--dedupe with --interpolation rife doubles the drawings (held 2 frames "
                        f"each) back to the input's rate: --fps must be {_rate(input_rate)}.")
    if input_rate and size and model_name(fps, input_rate, dedupe) == V4:
        steps = (input_rate / fps).denominator
        if size[0] * size[1] <= steps:
            raise FfsrError(f"--interpolation rife from {_rate(input_rate)} to {_rate(fps)} fps "
                            f"has {steps} distinct timesteps, more than a {size[0]}x{size[1]} "
                            f"frame has pixels to mark them.")


def _rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _card_path(base: Path, name: str) -> Path:
    return base / name / f"{name}{CARD_SUFFIX}"


def find_interpolator(base: Path | None = None, name: str = NAME) -> Interpolator | None:
    """The converted RIFE model, if its file is there and unchanged since conversion."""
    from ffsr.zoo import sha256_file

    card = _card_path(base or converted_models_dir(), name)
    if not card.is_file():
        return None
    data = json.loads(card.read_text())
    path = card.parent / data["file"]
    if not path.is_file() or sha256_file(path) != data["sha256"]:
        return None
    return Interpolator(name, path.resolve(), data["sha256"], data["fidelity"])


def rife_model(log: Callable[[str], None] = print, base: Path | None = None,
               name: str = NAME) -> Interpolator:
    """The converted RIFE model; converted from the pinned checkpoint on first use."""
    found = find_interpolator(base, name)
    if found:
        return found
    log(f"converting {name} (first use)…")
    return convert_rife(base or converted_models_dir(), name)


def convert_rife(base: Path, name: str = NAME) -> Interpolator:
    """Export the wrapper (side by side for HD v3, with the t-band for v4) to ONNX, check it
    against PyTorch, write the card."""
    from ffsr.convert_model import frameworks_missing
    from ffsr.zoo import load_manifest, sha256_file

    manifest = load_manifest(MODELS_DIR / "interpolators" / f"{name}.json")
    manifest.verify_source()
    if missing := frameworks_missing():
        raise FfsrError(f"--interpolation rife converts RIFE on first use and needs "
                        f"{', '.join(missing)}: `pip install 'ffsr[convert]'`.")
    from ffsr_convert.rife.export import build_timed, build_wrapper, check_onnx, export_onnx

    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.onnx"
    module = (build_timed if name == V4 else build_wrapper)(manifest.source_path)
    export_onnx(module, tmp)
    fidelity = check_onnx(module, tmp)
    if fidelity.within_one_level < 0.999:
        tmp.unlink(missing_ok=True)
        raise FfsrError(f"The RIFE ONNX export differs from PyTorch (only "
                        f"{fidelity.within_one_level:.4%} of values within one level).")
    path = folder / f"{name}.onnx"
    os.replace(tmp, path)
    card = {"name": name, "kind": "interpolator", "ratio": RATIO if name == NAME else "any",
            "file": path.name, "sha256": sha256_file(path), "input": "x", "output": "y",
            "layout": LAYOUTS[name],
            "fidelity": {"onnxruntime_vs_torch_max_levels": fidelity.max_levels,
                         "onnxruntime_vs_torch_within_one_level": fidelity.within_one_level},
            "source": manifest.source, "licence": manifest.source["licence"]}
    _card_path(base, name).write_text(json.dumps(card, indent=2) + "\n")
    found = find_interpolator(base, name)
    assert found is not None
    return found


def check_clip(fps: Fraction, input_rate: Fraction | None, frames: int | None,
               runtime: str = "local", dedupe: bool = False,
               size: tuple[int, int] | None = None) -> None:
    """Everything about an input that rules RIFE out, each refused in one sentence."""
    if runtime != "local":
        raise FfsrError("--interpolation rife runs with --runtime local only for now (the "
                        "image does not carry the RIFE model yet).")
    if frames is not None and frames < 2:
        raise FfsrError(f"--interpolation rife needs at least 2 frames; this input has {frames}.")
    check_rate(fps, input_rate, dedupe, size)


def graph_model(fps: Fraction | None, interpolation: str, runtime: str,
                log: Callable[[str], None] = print, input_rate: Fraction | None = None,
                dedupe: bool = False) -> str | None:
    """For `ffsr graph`: the RIFE file the printed graph names (None unless rife is asked
    for). Without --input-rate the input's rate is unknown, so the graph is HD v3's doubling
    and its fps filter fixes the output rate (a rate that is not twice the input's
    duplicates or drops frames); with it, v4 makes any other ratio."""
    if interpolation != "rife" or not fps:
        return None
    if runtime != "local":
        raise FfsrError("--interpolation rife runs with --runtime local only for now (the "
                        "image does not carry the RIFE model yet).")
    return str(rife_model(log, name=model_name(fps, input_rate, dedupe)).path)
