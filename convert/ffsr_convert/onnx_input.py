"""User-supplied ONNX files: check they fit FFmpeg's ONNX backend before anything else."""

from __future__ import annotations

from pathlib import Path

from ffsr.errors import FfsrError


def check_onnx_for_ffmpeg(path: Path) -> tuple[int, str, str]:
    """Return (channels, input name, output name) or refuse with the reason FFmpeg would fail."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise FfsrError(f"Cannot read {path} as ONNX (truncated or not an ONNX file).") from e
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) < 1:
        raise FfsrError(f"{path} has {len(inputs)} inputs; FFmpeg's ONNX backend feeds exactly one.")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise FfsrError(f"{path} takes {onnx.TensorProto.DataType.Name(tensor.elem_type)} input; "
                        "FFmpeg feeds float32.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if len(dims) != 4:
        raise FfsrError(f"{path} takes a {len(dims)}-D input; FFmpeg feeds 4-D NCHW tensors.")
    n, c, h, w = dims
    if c not in (1, 3) and w in (1, 3):
        raise FfsrError(f"{path} looks NHWC (input shape {dims}); FFmpeg's ONNX backend feeds NCHW: "
                        "re-export with channels first.")
    if c is None:
        raise FfsrError(f"{path} leaves its channel count open (input shape {dims}); FFmpeg needs "
                        "it fixed at 1 (Y) or 3 (RGB) in NCHW order: re-export with a fixed "
                        "channel axis.")
    if c not in (1, 3):
        raise FfsrError(f"{path} has {c} input channels; FFmpeg runs 1-channel (Y) or 3-channel "
                        "(RGB) models, and the channel count must be fixed in the model.")
    if n not in (None, 1):
        raise FfsrError(f"{path} has a fixed batch of {n}; FFmpeg feeds one frame at a time.")
    if h is not None or w is not None:
        raise FfsrError(f"{path} has a fixed input size {h}x{w}; FFmpeg needs dynamic height and "
                        "width: re-export with dynamic axes (ffsr convert-model does this from "
                        "the original checkpoint).")
    return c, inputs[0].name, model.graph.output[0].name
