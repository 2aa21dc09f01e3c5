"""Unit tests of the pure parts: escaping, graph templates, manifests, model cards."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffsr.errors import FfsrError
from ffsr.filtergraph import GraphOptions, render_graph
from ffsr.filterstring import escape_value, filter_options, unescape_token
from ffsr.model_card import ModelCard, ModelFile, load_card
from ffsr.zoo import zoo


def card(name: str = "m", color: str = "y", scale: int = 2, model_scale: int = 2,
         directory: Path = Path("/models/m")) -> ModelCard:
    files = {
        "onnx": ModelFile("onnx", f"{name}.onnx", "0" * 64, channels=1 if color == "y" else 3),
        "torch": ModelFile("torch", f"{name}.pt", "0" * 64, input="", output="", channels=3),
    }
    if color == "y":
        files["tensorflow"] = ModelFile("tensorflow", f"{name}.pb", "0" * 64,
                                        filters=("dnn_processing", "sr"))
    return ModelCard(name, "espcn", scale, model_scale, color, files, {}, "MIT", directory)


def parse_option_value(graph_value: str) -> str:
    """Undo both parsing levels the way FFmpeg does: graph level, then option level."""
    level1, rest = unescape_token(graph_value, "[],;")
    assert rest == ""
    value, rest = unescape_token(level1, ":")
    assert rest == ""
    return value


@given(st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s))
def test_escaped_values_parse_back_intact(value: str) -> None:
    assert parse_option_value(escape_value(value)) == value


def test_escaping_known_cases() -> None:
    assert escape_value("/a/b.onnx") == "/a/b.onnx"
    assert escape_value("C:/m,1.onnx") == r"C\\:/m\,1.onnx"
    assert parse_option_value(escape_value("it's [x]; y:z")) == "it's [x]; y:z"
    assert filter_options([("a", 1), ("b", None), ("c", "x:y")]) == r"a=1:c=x\\:y"


def test_compact_y_graph() -> None:
    g = render_graph([card()], GraphOptions(backend="onnx"))
    assert g == ("format=yuv420p,dnn_processing=dnn_backend=onnx:model=/models/m/m.onnx"
                 ":input=x:output=y")


def test_torch_runs_wrapped_rgb_file_without_tensor_names() -> None:
    g = render_graph([card()], GraphOptions(backend="torch", device="cuda"))
    assert g == ("format=rgb24,dnn_processing=dnn_backend=torch:model=/models/m/m.pt"
                 ":device=cuda:optimize=1")


def test_explicit_planes_and_labels() -> None:
    g = render_graph([card()], GraphOptions(y_form="explicit", in_label="0:v", out_label="up",
                                            chroma_scaler="lanczos"))
    assert g.startswith("[0:v]format=yuv420p,extractplanes=y+u+v[m0_y][m0_u][m0_v];")
    assert "[m0_u]scale=w=iw*2:h=ih*2:flags=lanczos[m0_u2]" in g
    assert g.endswith("mergeplanes=map1s=1:map2s=2:format=yuv420p[up]")


def test_same_size_model_is_prescaled_and_sr_prescales_itself() -> None:
    srcnn = card(model_scale=1)
    g = render_graph([srcnn], GraphOptions())
    assert g.startswith("scale=w=iw*2:h=ih*2:flags=bicubic,format=yuv420p,dnn_processing")
    sr = render_graph([srcnn], GraphOptions(backend="tensorflow", y_form="sr"))
    assert sr == ("format=yuv420p,sr=dnn_backend=tensorflow:model=/models/m/m.pb:input=x"
                  ":output=y:scale_factor=2")


def test_sr_filter_refuses_rgb_models() -> None:
    with pytest.raises(FfsrError, match="sr filter"):
        render_graph([card(color="rgb")], GraphOptions(backend="tensorflow", y_form="sr"))


def test_chain_interpolation_final_size_and_alpha() -> None:
    g = render_graph([card(name="a", directory=Path("/m/a")), card(name="b", directory=Path("/m/b"))],
                     GraphOptions(fps=Fraction(60000, 1001), width=1920, height=1080, alpha=True,
                                  dedupe=True, deinterlace=True))
    assert g.startswith("bwdif=mode=send_frame,mpdecimate,setpts=N/FRAME_RATE/TB,minterpolate="
                        "fps=60000/1001:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=fdiff")
    assert "alphaextract,scale=w=iw*4:h=ih*4" in g
    assert g.index("model=/m/a/a.onnx") < g.index("model=/m/b/b.onnx")
    assert g.endswith("alphamerge,scale=w=1920:h=1080:flags=lanczos")


def test_paths_with_special_characters_are_escaped_in_graphs() -> None:
    g = render_graph([card(directory=Path("/tmp/a:b, c'd[1]"))], GraphOptions())
    value = g.split("model=", 1)[1].split(":input=")[0]
    assert parse_option_value(value) == "/tmp/a:b, c'd[1]/m.onnx"


def test_compiled_templates_are_cached_and_a_bad_entry_is_ignored(tmp_path: Path) -> None:
    """Each `ffsr` start renders from Jinja's bytecode cache under FFSR_CACHE_DIR; a damaged
    entry (disk trouble, a cache folder copied from elsewhere) is recompiled, not trusted."""
    import subprocess
    import sys

    code = ("from pathlib import Path; from ffsr.filtergraph import GraphOptions, render_graph; "
            "from ffsr.model_card import ModelCard, ModelFile; "
            "f = {'onnx': ModelFile('onnx', 'm.onnx', '0' * 64, channels=1)}; "
            "print(render_graph([ModelCard('m', 'espcn', 2, 2, 'y', f, {}, 'MIT', Path('/m'))], "
            "GraphOptions()))")
    env = {"FFSR_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    def render() -> str:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True)
        assert out.returncode == 0, out.stderr[-800:]
        return out.stdout

    first = render()
    entries = list((tmp_path / "jinja").glob("*.cache"))
    assert entries and "dnn_processing" in first
    assert render() == first  # from the cache
    for e in entries:
        e.write_bytes(e.read_bytes()[:40])  # truncated mid-write
    assert render() == first


def test_unknown_backend_and_device() -> None:
    with pytest.raises(FfsrError, match="Unknown DNN backend"):
        render_graph([card()], GraphOptions(backend="caffe"))
    with pytest.raises(FfsrError, match="cannot run on 'cuda'"):
        render_graph([card()], GraphOptions(backend="tensorflow", device="cuda"))


def test_zoo_manifests_are_complete() -> None:
    models = zoo()
    waifu2x = {f"waifu2x-{arch}{level}" for arch in ("upconv7", "upresnet10")
               for level in ("", "-noise0", "-noise1", "-noise2", "-noise3")}
    waifu2x |= {"waifu2x-vgg7", "waifu2x-vgg7-y", *(f"waifu2x-vgg7-noise{n}" for n in range(4))}
    assert set(models) == {"espcn", "srcnn", "realesr-animevideov3", "realesr-animevideox2v3",
                           "small-grayrealesrx2", *waifu2x}
    for m in models.values():
        assert m.scale in (1, 2, 4) and m.color in ("y", "rgb")
        assert m.source["licence"] and all(len(h) == 64 for h in m.source["sha256"].values())


def test_model_card_round_trip(tmp_path: Path) -> None:
    c = card(directory=tmp_path)
    loaded = load_card(c.save(tmp_path))
    assert loaded == c
    assert loaded.path_for("onnx") == tmp_path / "m.onnx"


PATH_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")


@pytest.mark.ffmpeg
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(dirname=st.text(PATH_CHARS, min_size=1, max_size=24).filter(lambda s: s not in (".", "..")),
       filename=st.text(PATH_CHARS, min_size=1, max_size=16))
def test_model_paths_with_any_characters_reach_ffmpeg(ffmpeg_bin: Path, espcn_files: dict[str, Path],
                                                      tmp_path_factory: pytest.TempPathFactory,
                                                      dirname: str, filename: str) -> None:
    """The rendered graph, given to the real ffmpeg, opens the model at its odd path."""
    import shutil
    import subprocess

    directory = tmp_path_factory.mktemp("paths") / dirname
    directory.mkdir()
    shutil.copyfile(espcn_files["onnx"], directory / f"{filename}.onnx")
    odd = ModelCard("odd", "espcn", 2, 2, "y",
                    {"onnx": ModelFile("onnx", f"{filename}.onnx", "0" * 64)}, {}, "MIT", directory)
    graph = render_graph([odd], GraphOptions(backend="onnx"))
    proc = subprocess.run([str(ffmpeg_bin), "-v", "error", "-f", "lavfi", "-i",
                           "testsrc2=s=32x24:d=0.04", "-vf", graph, "-f", "null", "-"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, (graph, proc.stderr.decode(errors="replace")[-300:])
