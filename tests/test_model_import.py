"""`-m PATH` with ONNX files a user brings: tiny nets with fixed weights, built and exported
here, are upscaled right (pixels against onnxruntime), imported once (cached by sha256), or
refused in one sentence with nothing written; never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import clean_env

from ffsr.media import read_frames
from ffsr.quality import to_8bit

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
import torch  # noqa: E402


def ffsr(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """ffsr in a child process with its own cache (so "first use" really is the first)."""
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=clean_env(cache), timeout=600)


def models_in(cache: Path) -> list[str]:
    d = cache / "ffsr" / "models"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def assert_one_sentence(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error:"), proc.stderr
    for fragment in fragments:
        assert fragment in message, message
    return message


def fixed(net: Any) -> Any:
    """Weights from a fixed seed, so every run exports the same file."""
    torch.manual_seed(11)
    for p in net.parameters():
        torch.nn.init.uniform_(p, -0.2, 0.2)
    return net.eval()


def export(net: Any, path: Path, shape: tuple[int, ...] = (1, 3, 40, 48), opset: int = 17,
           dynamic: bool = True, inputs: tuple[Any, ...] | None = None) -> Path:
    args = inputs or (torch.rand(*shape),)
    names = [f"x{i}" if i else "x" for i in range(len(args))]
    axes = {n: {2: "h", 3: "w"} for n in names} | {"y": {2: "H", 3: "W"}} if dynamic else None
    torch.onnx.export(net, args, str(path), dynamo=False, opset_version=opset,
                      input_names=names, output_names=["y"], dynamic_axes=axes)
    return path


def shuffle_x2() -> Any:
    return fixed(torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1),
                                     torch.nn.PixelShuffle(2), torch.nn.Sigmoid()))


class UNet8(torch.nn.Module):
    """Three halvings and three doublings with skips: sizes must be multiples of 8."""

    def __init__(self) -> None:
        super().__init__()
        self.inc = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.out = torch.nn.Sequential(torch.nn.Conv2d(4, 12, 3, padding=1), torch.nn.PixelShuffle(2))

    def forward(self, x: Any) -> Any:
        skips, y = [], self.inc(x)
        for _ in range(3):
            skips.append(y)
            y = torch.nn.functional.avg_pool2d(y, 2)
        for s in reversed(skips):
            y = torch.nn.functional.interpolate(y, scale_factor=2.0, mode="nearest") + s
        return self.out(y)


class TwoInputs(torch.nn.Module):
    def forward(self, a: Any, b: Any) -> Any:
        return torch.nn.functional.pixel_shuffle(torch.cat([a, b, a, b], 1)[:, :12], 2)


@pytest.fixture
def frame_png(ffmpeg_bin: Path, clips: Path, tmp_path: Path) -> Path:
    """One small RGB frame as PNG (lossless in and out, so pixels compare exactly)."""
    png = tmp_path / "frame.png"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-y", "-i", str(clips / "carphone_176x144.mp4"),
                    "-frames:v", "1", "-vf", "crop=96:64:40:40", str(png)], check=True)
    return png


def test_onnx_file_upscales_like_onnxruntime_and_is_imported_once(
        ffmpeg_bin: Path, frame_png: Path, tmp_path: Path) -> None:
    """`ffsr upscale frame.png -m x2.onnx`: ≤1 level against onnxruntime on the same frame;
    the second run reuses the import (same card, same files, said in the log)."""
    import onnxruntime as ort

    model = export(shuffle_x2(), tmp_path / "my model.onnx")
    cache, out = tmp_path / "cache", tmp_path / "out.png"
    # f32: bf16 (auto's choice on CPUs with bf16 units) is held to 50 dB, not to one level
    proc = ffsr(cache, "upscale", str(frame_png), "-m", str(model), "-o", str(out),
                "--precision", "f32")
    assert proc.returncode == 0, proc.stderr
    assert "importing as my-model-" in proc.stdout + proc.stderr
    [name] = models_in(cache)
    card = cache / "ffsr" / "models" / name / f"{name}.card.json"
    stamp = card.stat().st_mtime_ns

    rgb = read_frames(ffmpeg_bin, frame_png, "rgb24", 96, 64, 1)
    got = read_frames(ffmpeg_bin, out, "rgb24", 192, 128, 1)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": rgb.transpose(0, 3, 1, 2).astype(np.float32) / 255})[0]
    want = to_8bit(y.transpose(0, 2, 3, 1))
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, f"max diff {diff.max()}, {np.mean(diff > 0):.3%} differ"

    again = ffsr(cache, "upscale", str(frame_png), "-m", str(model), "-o", str(out), "--overwrite",
                 "--precision", "f32")
    assert again.returncode == 0, again.stderr
    assert "imported before" in again.stdout + again.stderr
    assert "importing" not in again.stdout + again.stderr
    assert models_in(cache) == [name] and card.stat().st_mtime_ns == stamp
    assert np.array_equal(read_frames(ffmpeg_bin, out, "rgb24", 192, 128, 1), got)


def test_opset_9_file_works_through_graph(ffmpeg_bin: Path, tmp_path: Path) -> None:
    model = export(shuffle_x2(), tmp_path / "old.onnx", opset=9)
    cache = tmp_path / "cache"
    proc = ffsr(cache, "graph", "-m", str(model))
    assert proc.returncode == 0, proc.stderr
    assert "dnn_processing" in proc.stdout and "old-" in proc.stdout
    assert len(models_in(cache)) == 1


def valid_convolutions() -> Any:
    """2·input − 6: 3 input pixels lost at each edge before the x2, 1 output pixel after."""
    return fixed(torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3), torch.nn.PixelShuffle(2),
                                     torch.nn.Conv2d(3, 3, 3)))


# model, input pixels edge-padded at each side, size multiple, output pixels skipped
PADDED = {"unet-multiple-8": (lambda: fixed(UNet8()), 0, 8, 0),
          "valid-convolutions": (valid_convolutions, 2, 1, 1)}


@pytest.mark.parametrize("case", list(PADDED))
def test_model_needing_padding_runs_padded_and_cropped(ffmpeg_bin: Path, clips: Path,
                                                       tmp_path: Path, case: str) -> None:
    """On a 92x60 frame (not a multiple of 8): ffsr's output equals the source model run on
    the edge-padded frame, cropped to 2x the frame (≤1 level)."""
    import onnxruntime as ort

    make, pad, multiple, skip = PADDED[case]
    png, out = tmp_path / "frame.png", tmp_path / "out.png"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-y", "-i", str(clips / "carphone_176x144.mp4"),
                    "-frames:v", "1", "-vf", "crop=92:60:40:40", str(png)], check=True)
    model = export(make(), tmp_path / f"{case}.onnx")
    proc = ffsr(tmp_path / "cache", "upscale", str(png), "-m", str(model), "-o", str(out),
                "--precision", "f32")
    assert proc.returncode == 0, proc.stderr
    assert "edge-padded" in proc.stdout + proc.stderr
    x = read_frames(ffmpeg_bin, png, "rgb24", 92, 60, 1).transpose(0, 3, 1, 2)
    h, w = 60 + 2 * pad, 92 + 2 * pad
    h, w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    x = np.pad(x.astype(np.float32) / 255,
               ((0, 0), (0, 0), (pad, h - 60 - pad), (pad, w - 92 - pad)), mode="edge")
    y = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = to_8bit(y[:, :, skip:skip + 120, skip:skip + 184].transpose(0, 2, 3, 1))
    got = read_frames(ffmpeg_bin, out, "rgb24", 184, 120, 1)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1, f"max diff {diff.max()}, {np.mean(diff > 0):.3%} differ"


def refusal_cases(tmp_path: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    odd = fixed(torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3), torch.nn.PixelShuffle(2),
                                    torch.nn.Conv2d(3, 3, 2)))  # 2·input − 5
    return {
        "fixed-size": (export(shuffle_x2(), tmp_path / "fixed.onnx", dynamic=False),
                       ("fixed input size 40x48",)),
        "two-inputs": (export(TwoInputs(), tmp_path / "two.onnx",
                              inputs=(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))),
                       ("2 inputs",)),
        "odd-border": (export(odd, tmp_path / "odd.onnx"), ("odd number of output pixels (5)",)),
        "scale-varies": (export(FixedOutput(), tmp_path / "fixed_out.onnx"),
                         ("not one integer scale",)),
        "nhwc": (export(NHWC(), tmp_path / "nhwc.onnx", shape=(1, 40, 48, 3), dynamic=False),
                 ("NHWC",)),
    }


class FixedOutput(torch.nn.Module):
    """Dynamic input, but always a 64x64 output: the scale changes with the size."""

    def forward(self, x: Any) -> Any:
        return torch.nn.functional.interpolate(x, size=(64, 64))


class NHWC(torch.nn.Module):
    def forward(self, x: Any) -> Any:
        y = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), scale_factor=2.0)
        return y.permute(0, 2, 3, 1)


def uint8_input(path: Path) -> Path:
    """A model taking uint8 frames (casts to float itself): FFmpeg feeds float32."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "u8",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "h", "w"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_unfit_onnx_files_are_refused_in_one_sentence(ffmpeg_bin: Path, frame_png: Path,
                                                      tmp_path: Path) -> None:
    """Each unfit file: exit non-zero, one `error:` sentence naming the reason, no traceback,
    no output and nothing in the model cache."""
    cases = refusal_cases(tmp_path)
    cases["uint8-input"] = (uint8_input(tmp_path / "u8.onnx"), ("UINT8 input",))
    cache = tmp_path / "cache"
    messages = {}
    for case, (model, fragments) in cases.items():
        out = tmp_path / f"{case}.png"
        cmd = ("upscale", str(frame_png), "-m", str(model), "-o", str(out))
        messages[case] = assert_one_sentence(ffsr(cache, *cmd), *fragments)
        assert not out.exists(), case
        assert models_in(cache) == [], (case, models_in(cache))
    assert_one_sentence(ffsr(cache, "graph", "-m", str(cases["two-inputs"][0])), "2 inputs")
    print("\n".join(f"{k}: {v}" for k, v in messages.items()))


def test_missing_model_file_is_one_sentence(tmp_path: Path) -> None:
    proc = ffsr(tmp_path / "cache", "graph", "-m", str(tmp_path / "nope.onnx"))
    assert_one_sentence(proc, "Model file not found")
