"""Pad-and-crop around a user's ONNX net, inside the file FFmpeg loads: frames are edge-padded
to the size multiple the net needs (and by the border valid convolutions eat), and the
output is cropped back to scale × the frame, so FFmpeg sees an ordinary same-size upscaler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ffsr.errors import FfsrError
from ffsr_convert.onnx_probe import OnnxShape

OPSET = 13  # Pad with a tensor of pads and mode=edge, Slice with tensor starts/ends


def pad_plan(shape: OnnxShape, path: Path) -> tuple[int, int]:
    """(input pixels to pad at each edge, output pixels to skip at the top-left)."""
    if shape.border % 2:
        raise FfsrError(f"{path} loses an odd number of output pixels ({shape.border}) at the "
                        "edges, so ffsr cannot centre its output on the frame.")
    pad = -(-shape.border // (2 * shape.scale))
    return pad, shape.scale * pad - shape.border // 2


def wrap_pad_crop(path: Path, out: Path, shape: OnnxShape) -> None:
    """Write ``path`` wrapped in edge padding and a crop to ``out`` (same input/output names)."""
    import onnx
    from onnx import helper, numpy_helper, version_converter

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset < OPSET:
        try:
            model = version_converter.convert_version(model, OPSET)
        except Exception as e:
            raise FfsrError(f"{path} needs padding, and its opset {opset} cannot be converted to "
                            f"{OPSET} to add it ({str(e).splitlines()[0][:120]}).") from e
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    x = next(i.name for i in graph.input if i.name not in inits)
    y = graph.output[0].name
    inner_x, inner_y = "ffsr_padded_input", "ffsr_full_output"
    for node in graph.node:
        node.input[:] = [inner_x if n == x else n for n in node.input]
        node.output[:] = [inner_y if n == y else n for n in node.output]
        for other in node.input:
            if other == y:  # the output also feeds another node
                raise FfsrError(f"{path} reads its own output inside the graph; ffsr cannot "
                                "wrap it in padding.")
    pad, skip = pad_plan(shape, path)
    m, s = shape.multiple, shape.scale

    def const(name: str, values: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    c = {k: const(f"ffsr_{k}", v) for k, v in {
        "two": [2], "four": [4], "m": [m, m], "pad": [pad, pad], "zeros": [0, 0],
        "scale": [s, s], "skip": [skip, skip], "axes": [2, 3]}.items()}
    nodes: list[Any] = [
        helper.make_node("Shape", [x], ["ffsr_shape"]),
        helper.make_node("Slice", ["ffsr_shape", c["two"], c["four"]], ["ffsr_hw"]),
        helper.make_node("Add", ["ffsr_hw", c["pad"]], ["ffsr_hw_p"]),
        helper.make_node("Add", ["ffsr_hw_p", c["pad"]], ["ffsr_hw_pp"]),
        helper.make_node("Mod", ["ffsr_hw_pp", c["m"]], ["ffsr_rem"]),
        helper.make_node("Sub", [c["m"], "ffsr_rem"], ["ffsr_short"]),
        helper.make_node("Mod", ["ffsr_short", c["m"]], ["ffsr_fill"]),
        helper.make_node("Add", ["ffsr_fill", c["pad"]], ["ffsr_end"]),
        helper.make_node("Concat", [c["zeros"], c["pad"], c["zeros"], "ffsr_end"], ["ffsr_pads"],
                         axis=0),
        helper.make_node("Pad", [x, "ffsr_pads"], [inner_x], mode="edge"),
    ]
    crop = [
        helper.make_node("Mul", ["ffsr_hw", c["scale"]], ["ffsr_out_hw"]),
        helper.make_node("Add", ["ffsr_out_hw", c["skip"]], ["ffsr_stop"]),
        helper.make_node("Slice", [inner_y, c["skip"], "ffsr_stop", c["axes"]], [y]),
    ]
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old + crop)
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise FfsrError(f"{path} could not be wrapped in padding "
                        f"({str(e).splitlines()[0][:120]}).") from e
    onnx.save(model, str(out))
