"""convert-model on the real shared checkpoints: every output matches its source in its
runtime and inside ffmpeg; bad inputs fail cleanly and leave nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ffsr.model_card import ModelCard
from ffsr.precision import cpu_has_bf16

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("spandrel")


def test_every_zoo_model_converts_and_matches_its_source(zoo_models: dict[str, ModelCard]) -> None:
    expected_backends = {"espcn": {"onnx", "openvino", "torch", "tensorflow"},
                         "srcnn": {"onnx", "openvino", "torch", "tensorflow"},
                         "realesr-animevideov3": {"onnx", "openvino", "torch"},
                         "realesr-animevideox2v3": {"onnx", "openvino", "torch"},
                         "small-grayrealesrx2": {"onnx", "openvino", "torch"}}
    for name, card in zoo_models.items():
        assert set(card.files) == expected_backends[name], name
        for backend, mf in card.files.items():
            assert (card.directory / mf.path).is_file()
            for check in ("runtime", "ffmpeg"):
                result = mf.fidelity[check]
                assert result["passes"] and result["within_one"] >= 0.999, (name, backend, check)
                assert result["psnr_db"] >= 50
    assert zoo_models["espcn"].files["tensorflow"].fidelity["ffmpeg_sr_filter"]["passes"]
    if cpu_has_bf16():  # the card records bf16 against the f32 source (DESIGN §6: ~57 dB)
        for name, card in zoo_models.items():
            bf16 = card.files["openvino"].fidelity["ffmpeg_bf16"]
            assert bf16["passes"] and bf16["psnr_db"] >= 50, (name, bf16)
    assert zoo_models["realesr-animevideov3"].scale == 4
    assert zoo_models["small-grayrealesrx2"].color == "y"
    assert zoo_models["srcnn"].prescale == 2


def test_onnx_outputs_have_dynamic_height_and_width(zoo_models: dict[str, ModelCard]) -> None:
    import onnx

    for card in zoo_models.values():
        model = onnx.load(str(card.path_for("onnx")))
        assert model.opset_import[0].version >= 17
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[2].dim_param and dims[3].dim_param, card.name


def test_espcn_and_srcnn_beat_bicubic_on_set5_and_set14(zoo_models: dict[str, ModelCard],
                                                       ffmpeg_bin: Path, ffprobe_bin: Path,
                                                       shared_data: Path) -> None:
    from ffsr.evaluate import evaluate, mean_by_method

    for dataset in ("Set5", "Set14"):
        images = sorted((shared_data / "images" / dataset).glob("*.png"))
        scores = mean_by_method(evaluate(ffmpeg_bin, ffprobe_bin, images, 2,
                                         [zoo_models["espcn"], zoo_models["srcnn"]]))
        assert scores["espcn"][0] > scores["bicubic"][0] + 0.3, (dataset, scores)
        assert scores["srcnn"][0] > scores["bicubic"][0] + 0.1, (dataset, scores)
        assert scores["espcn"][0] > scores["lanczos"][0], (dataset, scores)


def ffsr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def assert_clean_failure(proc: subprocess.CompletedProcess[str], fragment: str, out: Path) -> None:
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert "error:" in message and fragment in message, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


def test_missing_checkpoint(out: Path) -> None:
    proc = ffsr("convert-model", "--checkpoint", "/nonexistent/model.pth", "-o", str(out))
    assert_clean_failure(proc, "not found", out)


def test_truncated_checkpoint(shared_data: Path, tmp_path: Path, out: Path) -> None:
    src = shared_data / "checkpoints/realesrgan/realesr-animevideox2v3.pth"
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    proc = ffsr("convert-model", "--checkpoint", str(bad), "-o", str(out))
    assert_clean_failure(proc, "truncated", out)


def test_unknown_architecture(tmp_path: Path, out: Path) -> None:
    import torch

    bad = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(7, 5), "head.bias": torch.zeros(3)}, bad)
    proc = ffsr("convert-model", "--checkpoint", str(bad), "-o", str(out))
    assert_clean_failure(proc, "Unknown architecture", out)


def test_scale_that_does_not_match_the_weights(shared_data: Path, out: Path) -> None:
    pth = shared_data / "checkpoints/realesrgan/realesr-animevideox2v3.pth"
    assert_clean_failure(ffsr("convert-model", "--checkpoint", str(pth), "--scale", "4",
                              "-o", str(out)), "x2 model", out)
    ckpt = shared_data / "checkpoints/hvrr-sr/espcn"
    assert_clean_failure(ffsr("convert-model", "--checkpoint", str(ckpt), "--arch", "espcn",
                              "--scale", "3", "-o", str(out)), "scale 2", out)


def test_checksum_mismatch_refuses(shared_data: Path, tmp_path: Path, out: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(shared_data / "checkpoints", data / "checkpoints")
    target = data / "checkpoints/realesrgan/realesr-animevideov3.pth"
    blob = bytearray(target.read_bytes())
    blob[-100] ^= 0xFF
    target.write_bytes(bytes(blob))
    proc = ffsr("convert-model", "realesr-animevideov3", "-o", str(out),
                env={"FFSR_DATA_DIR": str(data)})
    assert_clean_failure(proc, "Checksum mismatch", out)


def export_fixed(tmp_path: Path, name: str, shape: tuple[int, int, int, int], nhwc: bool) -> Path:
    import torch

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if nhwc:
                x = x.permute(0, 3, 1, 2)
            y = torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
            return y.permute(0, 2, 3, 1) if nhwc else y

    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(Net(), (torch.rand(*shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"])
    return path


def test_onnx_with_fixed_shape_is_refused(tmp_path: Path, out: Path) -> None:
    path = export_fixed(tmp_path, "fixed", (1, 3, 64, 64), nhwc=False)
    proc = ffsr("convert-model", "--checkpoint", str(path), "-o", str(out))
    assert_clean_failure(proc, "fixed input size 64x64", out)


def test_onnx_in_nhwc_layout_is_refused(tmp_path: Path, out: Path) -> None:
    path = export_fixed(tmp_path, "nhwc", (1, 64, 64, 3), nhwc=True)
    proc = ffsr("convert-model", "--checkpoint", str(path), "-o", str(out))
    assert_clean_failure(proc, "NHWC", out)


def test_user_onnx_with_dynamic_shape_imports(zoo_models: dict[str, ModelCard], out: Path) -> None:
    src = zoo_models["espcn"].path_for("onnx")
    proc = ffsr("convert-model", "--checkpoint", str(src), "--name", "my-espcn", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    card = out / "my-espcn" / "my-espcn.card.json"
    assert card.is_file()
    import json

    data = json.loads(card.read_text())
    assert data["scale"] == 2 and data["color"] == "y"
    assert data["files"]["onnx"]["fidelity"]["ffmpeg"]["passes"]
    assert np.isclose(data["files"]["onnx"]["fidelity"]["ffmpeg"]["within_one"], 1.0)


@pytest.mark.docker
def test_conversion_inside_the_image(cpu_image: str, tmp_path: Path) -> None:
    """Without the frameworks on the host, the same recipe runs in the ffsr image."""
    out = tmp_path / "models"
    proc = ffsr("convert-model", "espcn", "--runtime", "docker", "--image", cpu_image,
                "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    import json

    card = json.loads((out / "espcn" / "espcn.card.json").read_text())
    assert set(card["files"]) == {"onnx", "openvino", "torch", "tensorflow"}
    assert all(f["fidelity"]["ffmpeg"]["passes"] for f in card["files"].values())
    assert [p.name for p in out.iterdir()] == ["espcn"]
