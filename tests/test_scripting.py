"""ffsr inside people's own scripts: `eval "$(ffsr env)"` then plain ffmpeg with
`ffsr graph`, portable and container graphs, the `docker run` line, the ffmpeg-python node
from the README, and shell completion. Real shells, real ffmpeg, pixels compared."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import clean_env

from ffsr.ffmpeg_tools import choose_ffmpeg
from ffsr.paths import PROJECT_ROOT, ffmpeg_builds_dir

CLIP = "realshort_320x240.mp4"  # 36 frames with audio
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path, shared_data: Path) -> dict[str, str]:
    """Environment for ffsr processes: a cache of their own (the ffmpeg ffsr finds by default),
    ESPCN converted (onnx) into its default place, and ffsr's own command on PATH."""
    environ = clean_env(tmp_path_factory.mktemp("cache"),
                        PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "ffsr", "convert-model", "espcn", "--backends", "onnx"],
                          capture_output=True, text=True, env=environ, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert (models_dir(environ) / "espcn" / "espcn.onnx").is_file(), proc.stderr
    return environ


def models_dir(env: dict[str, str]) -> Path:
    """Where ffsr keeps converted models for processes run with ``env``."""
    return Path(env["XDG_CACHE_HOME"]) / "ffsr" / "models"


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """This process reads ``env``'s cache, as the ffsr processes do."""
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])


def ffsr(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=900)


def video_md5(ffmpeg: Path, path: Path) -> str:
    """MD5 of the decoded video frames (yuv420p), whatever the container and codec."""
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-map", "0:v", "-pix_fmt",
                          "yuv420p", "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def stream_md5(ffmpeg: Path, path: Path, stream: str) -> str:
    out = subprocess.run([str(ffmpeg), "-v", "error", "-i", str(path), "-map", stream, "-c", "copy",
                          "-f", "md5", "-"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def upscale_reference(env: dict[str, str], src: Path, out: Path, *extra: str) -> Path:
    """What `ffsr upscale` writes, losslessly, so frames can be compared exactly."""
    proc = ffsr(env, "upscale", str(src), "-m", "espcn", "-o", str(out), "--encoder", "ffv1", *extra)
    assert proc.returncode == 0, proc.stderr
    return out


# ---------------------------------------------------------------- ffsr env


SHELL_SCRIPTS = {
    "posix": """
eval "$(ffsr env)"
eval "$(ffsr env)"
echo "ffmpeg=$(command -v ffmpeg)"
echo "ffprobe=$(command -v ffprobe)"
echo "PATH=$PATH"
ffmpeg -hide_banner -buildconf | grep -c enable-libonnxruntime
eval "$(ffsr env --unset)"
echo "after=$(command -v ffmpeg || echo none)"
echo "PATH=$PATH"
""",
    "fish": """
ffsr env | source
ffsr env | source
echo "ffmpeg="(command -v ffmpeg)
echo "ffprobe="(command -v ffprobe)
echo "PATH="(string join : $PATH)
ffmpeg -hide_banner -buildconf | grep -c enable-libonnxruntime
ffsr env --unset | source
set found (command -v ffmpeg); or set found none
echo "after=$found"
echo "PATH="(string join : $PATH)
""",
}


@pytest.mark.parametrize("shell", ["bash", "sh", "zsh", "fish"])
def test_env_puts_ffsr_ffmpeg_first_and_unset_takes_it_away(env: dict[str, str], ffmpeg_bin: Path,
                                                            shell: str) -> None:
    path = shutil.which(shell)
    if not path:
        pytest.skip(f"{shell} is not installed")
    script = SHELL_SCRIPTS["fish" if shell == "fish" else "posix"]
    proc = subprocess.run([path, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**env, "SHELL": path})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    said = dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("PATH="))
    paths = [ln.split("=", 1)[1] for ln in lines if ln.startswith("PATH=")]
    default = choose_ffmpeg().ffmpeg.resolve()  # the same builds as env's cache links to
    assert ffmpeg_builds_dir().resolve() in default.parents
    assert Path(said["ffmpeg"]).resolve() == default
    assert Path(said["ffprobe"]).resolve() == default.with_name("ffprobe")
    env_dir = str(Path(said["ffmpeg"]).parent)
    assert paths[0].split(":").count(env_dir) == 1, "a second eval must not stack folders"
    assert paths[0].split(":")[0] == env_dir
    assert sorted(p.name for p in Path(env_dir).iterdir() if not p.name.startswith(".")) == [
        "ffmpeg", "ffprobe"], "only ffmpeg and ffprobe are put on PATH"
    assert "1" in lines, "the ffmpeg on PATH has the ONNX backend"
    assert env_dir not in paths[1].split(":")
    assert said["after"] == "none" or Path(said["after"]).resolve() != default


def test_env_needs_no_library_path(ffmpeg_bin: Path) -> None:
    """The RPATHs find every runtime library: nothing for `ffsr env` to export."""
    from ffsr.shell_env import missing_libraries

    for tool in ("ffmpeg", "ffprobe"):
        assert missing_libraries(ffmpeg_bin.with_name(tool)) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_env_speaks_the_shell_that_runs_it_without_shell_variable(env: dict[str, str],
                                                                  shell: str) -> None:
    """Cron, CI and `env -i` scripts have no $SHELL; a zsh user's bash script needs bash
    syntax: the parent process decides before $SHELL does."""
    path = shutil.which(shell)
    assert path, f"{shell} is not installed"
    bare = {k: v for k, v in env.items() if k != "SHELL"}
    wrong = {**env, "SHELL": "/usr/bin/fish" if shell != "fish" else "/bin/bash"}
    for environ in (bare, wrong):
        proc = subprocess.run([path, "-c", "ffsr env; echo"], capture_output=True, text=True,
                              env=environ, timeout=120)
        assert proc.returncode == 0, proc.stderr
        fish_syntax = "set -gx PATH" in proc.stdout
        assert fish_syntax == (shell == "fish"), proc.stdout


def test_env_without_any_shell_to_tell_from_says_so(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k != "SHELL"}
    proc = ffsr(bare, "env")  # started by Python, not by a shell
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Cannot tell the shell from nothing ($SHELL is not set); pass --shell" in proc.stderr


def test_env_refuses_a_shell_it_cannot_speak(env: dict[str, str]) -> None:
    proc = ffsr({**env, "SHELL": "/bin/tcsh"}, "env")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Cannot tell the shell from 'tcsh'; pass --shell with one of bash, zsh, fish, sh." in proc.stderr


def test_doctor_mentions_ffsr_env(env: dict[str, str]) -> None:
    plain_path = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "ffsr" not in p)
    proc = subprocess.run([str(VENV_BIN / "ffsr"), "doctor"], capture_output=True, text=True,
                          env={**env, "PATH": plain_path}, timeout=300)
    line = next(ln for ln in proc.stderr.splitlines() if "ffmpeg on PATH" in ln)
    assert line.startswith("no") and 'eval "$(ffsr env)"' in line, line


# ---------------------------------------------------------------- graphs in plain scripts


def test_plain_shell_script_with_ffsr_graph_equals_upscale(env: dict[str, str], ffmpeg_bin: Path,
                                                           clips: Path, tmp_path: Path) -> None:
    """The issue's promise, as a user writes it: eval, then ffmpeg with $(ffsr graph)."""
    shutil.copy(clips / CLIP, tmp_path / "in.mp4")
    script = tmp_path / "upscale.sh"
    script.write_text('#!/bin/bash\nset -euo pipefail\neval "$(ffsr env)"\n'
                      'ffmpeg -v error -y -i in.mp4 -vf "$(ffsr graph -m espcn)" -c:v ffv1 -c:a copy '
                      'out.mkv\n')
    script.chmod(0o755)
    # The system's ffmpeg (no DNN backends) is what PATH offers before the eval.
    proc = subprocess.run([str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)  # deliberately a user's shell script
    assert proc.returncode == 0, proc.stderr
    ref = upscale_reference(env, tmp_path / "in.mp4", tmp_path / "ref.mkv")
    assert video_md5(ffmpeg_bin, tmp_path / "out.mkv") == video_md5(ffmpeg_bin, ref)
    assert stream_md5(ffmpeg_bin, tmp_path / "out.mkv", "0:a") == stream_md5(ffmpeg_bin, ref, "0:a")


def test_model_dir_makes_the_graph_portable(env: dict[str, str], ffmpeg_bin: Path, clips: Path,
                                            tmp_path: Path) -> None:
    """A relative --model-dir graph runs wherever the models folder is copied beside it."""
    proc = ffsr(env, "graph", "-m", "espcn", "--model-dir", "models")
    assert proc.returncode == 0, proc.stderr
    graph = proc.stdout.strip()
    assert "model=models/espcn/espcn.onnx" in graph and str(tmp_path) not in graph
    elsewhere = tmp_path / "other machine"
    shutil.copytree(models_dir(env) / "espcn", elsewhere / "models" / "espcn")
    shutil.copy(clips / CLIP, elsewhere / "in.mp4")
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-i", "in.mp4", "-frames:v", "5", "-vf", graph,
                    "-c:v", "ffv1", "-an", "out.mkv"], cwd=elsewhere, check=True, capture_output=True)
    ref = upscale_reference(env, elsewhere / "in.mp4", tmp_path / "ref.mkv", "--frames", "5")
    assert video_md5(ffmpeg_bin, elsewhere / "out.mkv") == video_md5(ffmpeg_bin, ref)


def test_docker_graph_and_run_line(env: dict[str, str], clips: Path, tmp_path: Path) -> None:
    """What --runtime docker prints, read without an engine: container paths, the mounts and
    the rules of `ffsr upscale --runtime docker`."""
    models = models_dir(env) / "espcn"
    proc = ffsr(env, "graph", "-m", "espcn", "--runtime", "docker")
    assert proc.returncode == 0, proc.stderr
    assert "model=/models/espcn/espcn.onnx" in proc.stdout
    assert f"-v {models.resolve()}:/models/espcn:ro" in proc.stderr
    out = tmp_path / "out"
    out.mkdir()
    proc = ffsr(env, "graph", "-m", "espcn", "--runtime", "docker", "--command", "-i", str(clips / CLIP),
                "-o", str(out / "up.mp4"))
    assert proc.returncode == 0, proc.stderr
    argv = shlex.split(proc.stdout)
    user = argv[argv.index("--user") + 1]
    assert argv[:6] == ["docker", "run", "--rm", "--network", "none", "--user"] and user not in ("0", "root")
    entry = argv.index("--entrypoint")
    mounts = [argv[i + 1] for i, a in enumerate(argv[:entry]) if a == "-v"]
    assert sorted(mounts) == sorted([f"{clips.resolve()}:/in:ro", f"{models.resolve()}:/models/espcn:ro",
                                     f"{out.resolve()}:/out"])
    assert argv[entry + 1:entry + 3] == ["ffmpeg", "ffsr:9.0.2-cpu"]
    assert "--gpus" not in argv and "-progress" not in argv and argv[-1] == "/out/up.mp4"
    assert f"/in/{CLIP}" in argv
    bad = ffsr(env, "graph", "-m", "espcn", "--runtime", "docker", "--model-dir", "m")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr


def test_cuda_run_line_asks_for_the_gpus(env: dict[str, str], clips: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The cuda flavour's line: --gpus all and the cuda image (the plan is made for the CPU,
    then asked for cuda, so no GPU is needed to read the line)."""
    from ffsr.docker_command import docker_run_argv
    from ffsr.upscale_job import UpscaleRequest, plan_upscale

    use_env(monkeypatch, env)
    plan = plan_upscale(UpscaleRequest(input=clips / CLIP, models=["espcn"], output=tmp_path / "o.mp4",
                                       runtime="docker"))
    argv = docker_run_argv(replace(plan, request=replace(plan.request, device="cuda")))
    assert argv[argv.index("--gpus") + 1] == "all" and "ffsr:9.0.2-cuda" in argv
    assert "--gpus" not in docker_run_argv(plan)


@pytest.mark.docker
@pytest.mark.slow
def test_printed_docker_run_line_equals_upscale_runtime_docker(cpu_image: str, env: dict[str, str],
                                                               ffmpeg_bin: Path, clips: Path,
                                                               tmp_path: Path) -> None:
    """The `docker run` line pasted into a shell gives the frames `ffsr upscale --runtime docker` gives."""
    pasted, upscaled = tmp_path / "pasted", tmp_path / "upscaled"
    for d in (pasted, upscaled):
        d.mkdir()
        d.chmod(0o777)  # run as root, the image's own user writes (the printed note says so)
    models = models_dir(env)
    for p in [models, *models.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    args = ["-m", "espcn", "--image", cpu_image]
    proc = ffsr(env, "graph", *args, "--runtime", "docker", "--command", "-i", str(clips / CLIP),
                "-o", str(pasted / "out.mp4"))
    assert proc.returncode == 0, proc.stderr
    shell = subprocess.run(["bash", "-c", proc.stdout], capture_output=True, text=True, env=env,
                           timeout=600)  # the line as a user pastes it
    assert shell.returncode == 0, shell.stderr[-2000:]
    up = ffsr(env, "upscale", str(clips / CLIP), *args, "--runtime", "docker", "-o",
              str(upscaled / "out.mp4"))
    assert up.returncode == 0, up.stderr
    assert video_md5(ffmpeg_bin, pasted / "out.mp4") == video_md5(ffmpeg_bin, upscaled / "out.mp4")


# ---------------------------------------------------------------- ffmpeg-python


def readme_python_example() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    return next(b for b in blocks if "ffsr.upscale_stream" in b)


def test_readme_ffmpeg_python_example_equals_upscale(env: dict[str, str], ffmpeg_bin: Path,
                                                     clips: Path, tmp_path: Path) -> None:
    shutil.copy(clips / CLIP, tmp_path / "in.mp4")
    proc = subprocess.run([sys.executable, "-c", readme_python_example()], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ref = upscale_reference(env, tmp_path / "in.mp4", tmp_path / "ref.mkv")
    assert video_md5(ffmpeg_bin, tmp_path / "out.mkv") == video_md5(ffmpeg_bin, ref)
    assert stream_md5(ffmpeg_bin, tmp_path / "out.mkv", "0:a") == stream_md5(ffmpeg_bin, ref, "0:a")


def test_ffmpeg_python_node_splices_the_graph_verbatim(env: dict[str, str], ffmpeg_bin: Path,
                                                       clips: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Model paths full of filter-graph syntax survive: ffsr escapes once, ffmpeg-python not again."""
    import ffmpeg

    import ffsr as api

    use_env(monkeypatch, env)
    odd = tmp_path / "it's [odd], x=1; y:2 "
    shutil.copytree(models_dir(env) / "espcn", odd / "espcn")
    src = ffmpeg.input(str(clips / CLIP))
    graph = api.graph("espcn", model_dir=str(odd))
    node: Any = api.upscale_stream(src.video, "espcn", model_dir=str(odd))
    out = ffmpeg.output(node.filter("hflip"), str(tmp_path / "out.mkv"), vcodec="ffv1", vframes=3)
    argv = out.compile(cmd=api.ffmpeg_path())
    assert argv[argv.index("-filter_complex") + 1] == f"[0:v]{graph}[s0];[s0]hflip[s1]"
    out.run(cmd=api.ffmpeg_path(), quiet=True)
    plain = ffmpeg.output(api.upscale_stream(ffmpeg.input(str(clips / CLIP)), "espcn").hflip(),
                          str(tmp_path / "plain.mkv"), vcodec="ffv1", vframes=3)
    plain.run(cmd=api.ffmpeg_path(), quiet=True)
    assert video_md5(ffmpeg_bin, tmp_path / "out.mkv") == video_md5(ffmpeg_bin, tmp_path / "plain.mkv")


# ---------------------------------------------------------------- completion


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_offers_zoo_and_converted_models(tmp_path: Path, shell: str) -> None:
    exe = VENV_BIN / "ffsr"
    if not exe.exists():
        pytest.skip("the ffsr command is not installed in this environment")
    base = clean_env(tmp_path / "cache", _FFSR_COMPLETE=f"complete_{shell}")
    mine = models_dir(base) / "my-model"
    mine.mkdir(parents=True)
    (mine / "my-model.card.json").write_text("{}")

    def complete(line: str) -> str:
        words = {"bash": {"COMP_WORDS": line, "COMP_CWORD": str(len(line.split()) - 1)},
                 "zsh": {"_TYPER_COMPLETE_ARGS": line},
                 "fish": {"_TYPER_COMPLETE_ARGS": line, "_TYPER_COMPLETE_FISH_ACTION": "get-args"}}
        proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                              env={**base, **words[shell]})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "my-model" in complete("ffsr upscale -m my")
    got = complete("ffsr graph -m realesr")
    assert "realesr-animevideov3" in got and "realesr-animevideox2v3" in got and "espcn" not in got
    assert "srcnn" in complete("ffsr convert-model sr")
    script = subprocess.run([str(exe), "--show-completion", shell], capture_output=True, text=True,
                            env={**os.environ, "_FFSR_COMPLETE": ""}, timeout=60)
    assert "_FFSR_COMPLETE" in script.stdout, script.stderr


def test_install_completion_edits_the_rc_file_bash_reads(tmp_path: Path) -> None:
    """`ffsr --install-completion bash` in a fresh HOME: ~/.bashrc sources the script it wrote
    (once, however often it is run), and a bash that reads ~/.bashrc completes ffsr with it."""
    exe = VENV_BIN / "ffsr"
    home = tmp_path / "home"
    home.mkdir()
    env = {**clean_env(tmp_path / "cache"), "HOME": str(home)}
    for _ in range(2):
        proc = subprocess.run([str(exe), "--install-completion", "bash"], capture_output=True,
                              text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
    script = home / ".bash_completions" / "ffsr.sh"
    assert (home / ".bashrc").read_text().count(f"source '{script}'") == 1
    assert "_FFSR_COMPLETE=complete_bash" in script.read_text()
    loaded = subprocess.run(["bash", "-c", "source ~/.bashrc && complete -p ffsr"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert loaded.stdout.strip() == "complete -o default -F _ffsr_completion ffsr", loaded.stderr
