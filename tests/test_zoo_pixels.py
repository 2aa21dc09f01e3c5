"""Every original zoo model through `ffsr upscale`, pixels against its source framework run on
the same decoded frames (issue 15): the Real-ESRGAN `.pth` files in PyTorch (spandrel loads
them, not ffsr's converter), and ESPCN and SRCNN against their original TensorFlow training
graphs from the checkpoints' `.meta` (not ffsr's own exported `.pb`). waifu2x: tests/test_waifu2x.py.

`--precision f32` because bf16 (auto's choice on CPUs with bf16 units) is held to 50 dB,
not to one level; the lossless outputs (.apng, FFV1) keep the model's pixels."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import safetensors_copy

from ffsr.media import read_frames, read_yuv420p_y
from ffsr.model_card import ModelCard
from ffsr.quality import compare_8bit, to_8bit

CLIP = "carphone_176x144.mp4"
W, H = 176, 144
FRAMES = 2


def ffsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=900)


def upscale(clip: Path, model: str, out: Path, *extra: str) -> None:
    proc = ffsr("upscale", str(clip), "-m", model, "--precision", "f32", "--frames", str(FRAMES),
                "-o", str(out), *extra)
    assert proc.returncode == 0, proc.stderr


def torch_run(pth: Path, frames: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] through the checkpoint in PyTorch, as the framework itself runs it."""
    import spandrel
    import torch

    net = spandrel.ModelLoader().load_from_file(str(pth)).model.eval()
    x = torch.from_numpy(frames.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    with torch.no_grad():
        y = torch.cat([net(x[i:i + 1]) for i in range(len(x))])
    return to_8bit(y.permute(0, 2, 3, 1).numpy())


@pytest.mark.parametrize(("model", "scale"), [("realesr-animevideov3", 4),
                                              ("realesr-animevideox2v3", 2)])
def test_rgb_realesrgan_through_upscale_equals_pytorch(zoo_models: dict[str, ModelCard],
                                                       ffmpeg_bin: Path, clips: Path,
                                                       shared_data: Path, tmp_path: Path,
                                                       model: str, scale: int) -> None:
    out = tmp_path / "out.apng"
    upscale(clips / CLIP, model, out)
    got = read_frames(ffmpeg_bin, out, "rgba", W * scale, H * scale)[..., :3]
    src = read_frames(ffmpeg_bin, clips / CLIP, "rgb24", W, H, FRAMES)
    want = torch_run(shared_data / f"checkpoints/realesrgan/{model}.pth", src)
    report = compare_8bit(got, want)
    assert report.within_one >= 0.999, report


@pytest.mark.parametrize("given", ["zoo name", "pth file", "safetensors file", "pt file"])
def test_gray_realesrgan_through_upscale_equals_pytorch(zoo_models: dict[str, ModelCard],
                                                        ffmpeg_bin: Path, clips: Path,
                                                        shared_data: Path, tmp_path: Path,
                                                        given: str) -> None:
    """By its zoo name, and as the Real-ESRGAN .pth itself (or the same weights as
    .safetensors or .pt) through `-m FILE`, imported on first use: the pixels PyTorch gives."""
    pth = shared_data / "checkpoints/realesrgan/small-grayrealesrx2.pth"
    model = "small-grayrealesrx2" if given == "zoo name" else str(pth)
    if given == "safetensors file":
        model = str(safetensors_copy(pth, tmp_path / "mine.safetensors"))
    if given == "pt file":  # the same torch.save file under the other name PyTorch uses
        model = str(shutil.copy(pth, tmp_path / "mine.pt"))
    out = tmp_path / "out.mkv"
    upscale(clips / CLIP, model, out, "--encoder", "ffv1")
    got = read_yuv420p_y(ffmpeg_bin, out, W * 2, H * 2)
    src = read_yuv420p_y(ffmpeg_bin, clips / CLIP, W, H, FRAMES)
    want = torch_run(pth, src[..., None])[..., 0]
    report = compare_8bit(got, want)
    assert report.within_one >= 0.999, report


TF_TRAINING_GRAPH = """
import sys
import numpy as np
from ffsr_convert import import_tensorflow
tf = import_tensorflow()
tf.compat.v1.disable_eager_execution()
ckpt, feed, fetch, divisor, frames_in, frames_out = sys.argv[1:]
y = np.load(frames_in).astype(np.float32)[..., None] / float(divisor)
graph = tf.Graph()
with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, (None, None, None, 1))
    # The training graph reads (target, input) batches from a dataset iterator: feed our
    # frames in place of the tensor named.
    saver = tf.compat.v1.train.import_meta_graph(ckpt + ".meta", clear_devices=True,
                                                 input_map={feed: x})
    pred = graph.get_tensor_by_name(fetch)
    with tf.compat.v1.Session(graph=graph) as sess:
        saver.restore(sess, ckpt)
        np.save(frames_out, sess.run(pred, {x: y})[..., 0])
"""

BICUBIC_2X = "scale=w=iw*2:h=ih*2:flags=bicubic"
TRAINING_GRAPHS = [
    # model, tensor fed, tensor fetched, divisor of the fed 8-bit values, ffmpeg filter that
    # makes the fed frames, output pixels lost at each edge (the graphs convolve unpadded)
    ("espcn", "IteratorGetNext:1", "espcn/prediction:0", 1, None, 8),  # 5x5,3x3,3x3 x2
    # SRCNN resizes inside the graph (TF bicubic); fed after that resize with the bicubic
    # 2x ffsr's graph puts before the model, so the comparison is of the network alone
    ("srcnn", "srcnn/ResizeBicubic:0", "srcnn/clip_by_value:0", 255, BICUBIC_2X, 6),  # 9,1,5
]


@pytest.mark.parametrize(("model", "feed", "fetch", "divisor", "prescale", "border"),
                         TRAINING_GRAPHS, ids=[g[0] for g in TRAINING_GRAPHS])
def test_tf_model_through_upscale_equals_the_original_training_graph(
        zoo_models: dict[str, ModelCard], ffmpeg_bin: Path, clips: Path, shared_data: Path,
        tmp_path: Path, model: str, feed: str, fetch: str, divisor: int, prescale: str | None,
        border: int) -> None:
    """The checkpoint's own graph (its .meta), not ffsr's export: it gives the interior, and
    ffsr's full frame must match it there."""
    out = tmp_path / "out.mkv"
    upscale(clips / CLIP, model, out, "--encoder", "ffv1")
    got = read_yuv420p_y(ffmpeg_bin, out, W * 2, H * 2)
    size = (W * 2, H * 2) if prescale else (W, H)
    src = read_yuv420p_y(ffmpeg_bin, clips / CLIP, *size, FRAMES, vf=prescale)
    np.save(tmp_path / "in.npy", src)
    proc = subprocess.run([sys.executable, "-c", TF_TRAINING_GRAPH,
                           str(shared_data / f"checkpoints/hvrr-sr/{model}/model_100.ckpt"),
                           feed, fetch, str(divisor), str(tmp_path / "in.npy"),
                           str(tmp_path / "tf.npy")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    want = to_8bit(np.load(tmp_path / "tf.npy"))
    assert want.shape == (FRAMES, H * 2 - 2 * border, W * 2 - 2 * border)
    report = compare_8bit(got[:, border:-border, border:-border], want)
    assert report.within_one >= 0.999, report
