"""Importing a user's frozen TensorFlow graph (.pb): find its input and output, measure
channels and scale by running it, verify it through ffmpeg's tensorflow backend (both
dnn_processing and, for Y graphs named x/y, the sr filter) against TensorFlow itself."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ffsr.errors import FfsrError
from ffsr.model_card import TF_GRAPH_ARCH, ModelCard, ModelFile
from ffsr.zoo import sha256_file
from ffsr_convert import import_tensorflow, verify
from ffsr_convert.exporters import run_frozen_graph
from ffsr_convert.pipeline import publish

PROBE_SIZES = ((24, 32), (30, 20))
NOT_OUTPUTS = {"Const", "NoOp", "Placeholder", "PlaceholderV2", "PlaceholderWithDefault",
               "Assert", "SaveV2", "RestoreV2", "Save", "Restore"}
VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp"}
DT_FLOAT = 1


@dataclass(frozen=True)
class PbShape:
    """What a frozen graph is, as measured: tensor names, NHWC channels and scale."""

    input: str
    output: str
    channels: int
    scale: int


def read_graph_def(path: Path) -> Any:
    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as e:  # protobuf's DecodeError
        raise FfsrError(f"{path} is not a frozen TensorFlow graph (GraphDef): "
                        f"{type(e).__name__}.") from e
    if not graph_def.node:
        raise FfsrError(f"{path} is not a frozen TensorFlow graph: it holds no operations.")
    return graph_def


def find_io(path: Path, graph_def: Any, input: str | None = None,
            output: str | None = None) -> tuple[str, str, list[int]]:
    """The one float placeholder (and its shape, -1 where unknown) and the one last op, or
    those named (convert-model --input/--output) where the graph has several."""
    variables = [n.name for n in graph_def.node if n.op in VARIABLE_OPS]
    if variables:
        raise FfsrError(f"{path} is not frozen: it still holds variables ({variables[0]}, …); "
                        "freeze it with tf.compat.v1.graph_util.convert_variables_to_constants.")
    holders = [n for n in graph_def.node if n.op in ("Placeholder", "PlaceholderV2")]
    names = ", ".join(n.name for n in holders) or "none"
    if input:
        holders = [n for n in holders if n.name == input]
        if not holders:
            raise FfsrError(f"{path} has no placeholder named '{input}' (it has: {names}).")
    if len(holders) != 1:
        raise FfsrError(f"{path} has {len(holders)} placeholders ({names}) but FFmpeg feeds a "
                        "frame to exactly one input tensor, so it cannot run this graph "
                        "(unless the output needs only one: `ffsr convert-model --checkpoint "
                        f"{path.name} --input-tensor NAME`).")
    holder = holders[0]
    if holder.attr["dtype"].type != DT_FLOAT:
        tf = import_tensorflow()
        kind = tf.dtypes.as_dtype(holder.attr["dtype"].type).name
        raise FfsrError(f"{path}: input '{holder.name}' is {kind}, but FFmpeg feeds float32 "
                        "frames, so it cannot run this graph.")
    shape = holder.attr["shape"].shape
    dims = [-1] * 4 if shape.unknown_rank else [d.size for d in shape.dim]
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    ends = [n.name for n in graph_def.node if n.name not in consumed and n.op not in NOT_OUTPUTS]
    if output:
        if output not in {n.name for n in graph_def.node}:
            raise FfsrError(f"{path} has no operation named '{output}'.")
        ends = [output]
    if len(ends) != 1:
        raise FfsrError(f"{path} ends in {len(ends)} operations ({', '.join(ends) or 'none'}), "
                        "so ffsr cannot tell which one is the upscaled frame: name it with "
                        f"`ffsr convert-model --checkpoint {path.name} --output-tensor NAME`.")
    return holder.name, ends[0], dims


def check_layout(path: Path, name: str, dims: list[int]) -> list[int]:
    """NHWC with free height and width (FFmpeg's TF backend feeds [1,H,W,C]); the channel
    counts left to try."""
    if len(dims) != 4:
        raise FfsrError(f"{path}: input '{name}' has {len(dims)} dimensions, not the 4 of a "
                        "[1,H,W,C] frame.")
    if dims[3] not in (-1, 1, 3) and dims[1] in (1, 3):
        raise FfsrError(f"{path}: input '{name}' is NCHW {dims}, but FFmpeg's TensorFlow backend "
                        "feeds NHWC frames.")
    if dims[1] != -1 or dims[2] != -1:
        raise FfsrError(f"{path}: input '{name}' has a fixed size {dims[1]}x{dims[2]}, so it "
                        "cannot take frames of other sizes.")
    if dims[3] not in (-1, 1, 3):
        raise FfsrError(f"{path}: input '{name}' has {dims[3]} channels; FFmpeg feeds 1 (Y) "
                        "or 3 (RGB).")
    return [1, 3] if dims[3] == -1 else [dims[3]]


def probe_pb(path: Path, input: str | None = None, output: str | None = None) -> PbShape:
    """Names from the graph, channels and scale from running it at two sizes."""
    name, output, dims = find_io(path, read_graph_def(path), input, output)
    errors = []
    for channels in check_layout(path, name, dims):
        try:
            outs = run_frozen_graph(path, [np.random.default_rng(0).random(
                (1, channels, h, w), np.float32) for h, w in PROBE_SIZES], name, output)
        except Exception as e:  # TF's InvalidArgumentError and kin: wrong channels or sizes
            errors.append(str(e).strip().splitlines()[0][:160])
            continue
        scales = set()
        for (h, w), out in zip(PROBE_SIZES, outs, strict=True):
            ok = out.ndim == 4 and out.shape[:2] == (1, channels) and out.shape[2] % h == 0
            if not ok or out.shape[2] // h != out.shape[3] / w:
                raise FfsrError(f"{path} maps 1x{h}x{w}x{channels} to "
                                f"{tuple(out.transpose(0, 2, 3, 1).shape)}: not an integer "
                                "upscale of the same channels.")
            scales.add(out.shape[2] // h)
        if len(scales) != 1:
            raise FfsrError(f"{path}'s scale changes with the frame size ({sorted(scales)}).")
        return PbShape(name, output, channels, scales.pop())
    raise FfsrError(f"{path} does not run in TensorFlow on a 1x{PROBE_SIZES[0][0]}x"
                    f"{PROBE_SIZES[0][1]} frame: {errors[0] if errors else 'no output'}.")


def import_pb(path: Path, name: str, scale: int | None, out_dir: Path, clip: Path,
              ffmpeg: Path | None, ffprobe: Path | None, ffmpeg_has_tf: bool,
              log: Callable[[str], None] = print, input: str | None = None,
              output: str | None = None) -> ModelCard:
    shape = probe_pb(path, input, output)
    if scale and scale != shape.scale:
        raise FfsrError(f"{path} upscales x{shape.scale}, not x{scale}.")
    log(f"graph      {path.name}: input '{shape.input}' [1,H,W,{shape.channels}] NHWC, output "
        f"'{shape.output}', x{shape.scale}")
    # The sr filter feeds the Y plane to tensors named x and y, nothing else.
    sr_ok = shape.channels == 1 and (shape.input, shape.output) == ("x", "y")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out_dir) as tmp_name:
        tmp = Path(tmp_name)
        shutil.copyfile(path, tmp / f"{name}.pb")
        mf = ModelFile("tensorflow", f"{name}.pb", sha256_file(tmp / f"{name}.pb"),
                       input=shape.input, output=shape.output, channels=shape.channels,
                       filters=("dnn_processing", "sr") if sr_ok else ("dnn_processing",))
        card = ModelCard(name=name, arch=TF_GRAPH_ARCH, scale=shape.scale,
                         model_scale=shape.scale, color="y" if shape.channels == 1 else "rgb",
                         files={"tensorflow": mf},
                         source={"kind": "file", "path": str(path.resolve()),
                                 "sha256": {path.name: sha256_file(path)},
                                 "measured": {"layout": "NHWC", "input": shape.input,
                                              "output": shape.output,
                                              "channels": shape.channels},
                                 "backends": "tensorflow only (tf2onnx is not installed)"},
                         licence="unknown", directory=tmp)
        if not (ffmpeg and ffprobe):
            raise FfsrError("Verification needs ffmpeg to decode frames; run `ffsr build-ffmpeg`.")
        frames = verify.load_frames(ffmpeg, ffprobe, clip, 2, 1)
        inputs = verify.model_input(frames, shape.channels)
        want = verify.as_8bit_planes(run_frozen_graph(path, inputs, shape.input, shape.output))
        checks: dict[str, object] = {"frames": frames.count, "clip": frames.clip.name}
        if not ffmpeg_has_tf:
            checks["ffmpeg"] = "not run (no cached ffmpeg build has the tensorflow backend)"
        for form in (("compact", "sr") if sr_ok else ("compact",)) if ffmpeg_has_tf else ():
            key = "ffmpeg" if form == "compact" else "ffmpeg_sr_filter"
            try:
                got = verify.run_in_ffmpeg(ffmpeg, card, "tensorflow", frames, y_form=form)
            except (RuntimeError, ValueError) as e:
                last = [ln.strip() for ln in str(e).splitlines() if ln.strip()][-1:] or ["?"]
                raise FfsrError(f"{path} runs in TensorFlow but not in ffmpeg's tensorflow "
                                f"backend ({last[0][:200]}); nothing was written.") from e
            checks[key] = report = verify.fidelity(got, want)
            log(f"tensorflow {mf.path:<28} {key} vs TensorFlow: {report['psnr_db']} dB, "
                f"≤1 level {100 * report['within_one']:.3f} %")
            if not report["passes"]:
                raise FfsrError(f"{path} gives different pixels in ffmpeg ({key}) than in "
                                f"TensorFlow: {report}; nothing was written.")
        card.files["tensorflow"] = ModelFile(**{**mf.__dict__, "fidelity": checks})
        return publish(card, tmp, out_dir / name)
