"""Write a model in each file format FFmpeg's DNN backends load."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ffsr_convert import import_tensorflow
from ffsr_convert.weights import SmallSRNet

ONNX_OPSET = 17


def export_onnx(module: object, path: Path, channels: int) -> None:
    """NCHW float32 ONNX with dynamic height/width (input ``x``, output ``y``)."""
    import torch

    assert isinstance(module, torch.nn.Module)
    module.eval()
    sample = torch.rand(1, channels, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (sample,), str(path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {2: "height", 3: "width"}, "y": {2: "out_height", 3: "out_width"}},
        )


def export_torchscript(module: object, path: Path, frozen: bool = True) -> None:
    """TorchScript for LibTorch (scripted, optionally frozen: inlines the weights)."""
    import torch

    assert isinstance(module, torch.nn.Module)
    module.eval()
    scripted = torch.jit.trace(module, torch.rand(1, 3, 32, 32), check_trace=False)
    if frozen:
        scripted = torch.jit.freeze(scripted)
    torch.jit.save(scripted, str(path))


def sr_graph(tf: Any, net: SmallSRNet, weight: Callable[[int, str, np.ndarray], Any]) -> None:
    """Into the current graph: input ``x`` [1,H,W,1] NHWC -> output ``y``, the same ops as
    hvrr-sr's export (symmetric padding, VALID convolutions, depth_to_space for ESPCN).
    ``weight(layer, "kernel" | "bias", value)`` makes each weight: a constant for ffsr's own
    export, a variable restored from the checkpoint for a graph frozen the old way."""
    x = tf.compat.v1.placeholder(tf.float32, [1, None, None, 1], name="x")
    p = net.pad
    h = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="SYMMETRIC")
    acts = {"tanh": tf.nn.tanh, "relu": tf.nn.relu, "sigmoid": tf.nn.sigmoid}
    for i, layer in enumerate(net.layers, 1):
        k, b = weight(i, "kernel", layer.kernel), weight(i, "bias", layer.bias)
        h = tf.nn.bias_add(tf.nn.conv2d(h, k, strides=[1, 1, 1, 1], padding="VALID"), b)
        if layer.activation != "linear":
            h = acts[layer.activation](h)
    if net.upsamples:
        h = tf.nn.depth_to_space(h, net.scale)
    tf.identity(h, name="y")


def export_frozen_pb(net: SmallSRNet, path: Path) -> None:
    """A frozen TF GraphDef (sr and dnn_processing), built directly from constants."""
    tf = import_tensorflow()

    graph = tf.Graph()
    with graph.as_default():
        sr_graph(tf, net, lambda i, kind, v: tf.constant(v, name=f"conv{i}/{kind}"))
    path.write_bytes(graph.as_graph_def().SerializeToString())


def run_frozen_graph(path: Path, inputs: list[np.ndarray], input: str = "x",
                     output: str = "y") -> list[np.ndarray]:
    """Run a frozen NHWC graph in TensorFlow on NCHW float frames; NCHW outputs."""
    tf = import_tensorflow()

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return [np.asarray(sess.run(f"{output}:0", {f"{input}:0": x.transpose(0, 2, 3, 1)}))
                .transpose(0, 3, 1, 2) for x in inputs]


def run_frozen_pb(path: Path, y: np.ndarray) -> np.ndarray:
    """Run a frozen graph on a [H,W] float Y plane; returns the output [H',W']."""
    return run_frozen_graph(path, [y[None, None].astype(np.float32)])[0][0, 0]
