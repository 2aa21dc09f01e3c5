"""Segments run elsewhere than in local processes, against the single-process run (framemd5
and audio bit-exact, helpers of test_segments.py):

- Ray: a real local cluster (ray.cluster_utils.Cluster) whose GPU nodes have logical GPUs;
  a node killed mid-task gets its task retried on another node, and tasks running at once
  see their own CUDA_VISIBLE_DEVICES (each worker records it, with when its ffmpeg ran, in
  its done record, and the driver prints it per segment).
- Kubernetes and Slurm: the rendered Indexed Job validates against the `kubernetes`
  client's models, and the worker command of the Job and of the sbatch script runs each
  index from JOB_COMPLETION_INDEX / SLURM_ARRAY_TASK_ID; the shipped examples are what the
  renderer makes.
- Bad input: Ray not installed, a worker that sees no work folder, no input or no ffmpeg.
- SIGTERM to a Ray driver cancels every task; no ffmpeg outlives it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from kubernetes import client as k8s
from ray.cluster_utils import Cluster
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (fixtures: ESPCN converted once)
from test_segments import (  # noqa: F401  (lean_ffmpeg, clips: fixtures)
    audio_md5,
    clips,
    ffsr,
    framemd5,
    lean_ffmpeg,
    make,
    one_sentence,
)
from test_signals import processes_mentioning

from ffsr.paths import DEPLOY_DIR
from ffsr.segments.deploy import DeployOptions, render_k8s, render_slurm

SMALL = {"object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
"""Ray's smallest object store (the tasks pass only small dicts); every node on loopback."""


@pytest.fixture(scope="module")
def reference(clips: dict[str, Path], ffmpeg_bin: Path, espcn_cache: Path,  # noqa: F811
              tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], str]:
    """framemd5 and audio md5 of the single-process run of the open-GOP clip."""
    out = tmp_path_factory.mktemp("reference") / "single.mp4"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(espcn_cache))
        proc = ffsr(str(clips["gop"]), "-m", "espcn", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return framemd5(ffmpeg_bin, out), audio_md5(ffmpeg_bin, out)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A Ray head without GPUs (tasks that ask for one wait for a GPU node), shut down after.
    All of it on 127.0.0.1: Ray otherwise swaps loopback for the machine's own address, and
    this switch (Ray's "no multi-machine clusters" mode, read by every Ray process started
    from here, the ffsr drivers too) keeps it."""
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "include_dashboard": False, **SMALL,
        # a killed node is noticed in ~2 s, not 15
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def busy_clip(ffmpeg_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seconds of ESPCN per half on two cores, so two tasks started together overlap."""
    clip = tmp_path_factory.mktemp("busy") / "busy.mp4"
    make(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=size=480x270:rate=25:duration=6",
         "-c:v", "libx264", "-g", "25", str(clip))
    return clip


def per_segment_devices(stderr: str) -> dict[int, str]:
    return {int(i): cvd for i, cvd in
            re.findall(r"segment (\d+): \d+ frames on \S+ \(CUDA_VISIBLE_DEVICES=(\S*)\)", stderr)}


def test_ray_node_lost_mid_task_is_retried_and_output_identical(
        cluster: Cluster, clips: dict[str, Path], reference: tuple[list[str], str],  # noqa: F811
        ffmpeg_bin: Path, tmp_path: Path) -> None:
    first = cluster.add_node(num_cpus=1, num_gpus=1, **SMALL)
    out, folder = tmp_path / "out.mp4", tmp_path / ".out.mp4.ffsr-segments"
    driver = subprocess.Popen(
        [sys.executable, "-m", "ffsr", "upscale", str(clips["gop"]), "-m", "espcn", "-o", str(out),
         "--segments", "3", "--executor", "ray", "--ray-address", cluster.address,
         "--gpus-per-segment", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (running := processes_mentioning(f"{folder}/.segment-")) \
                and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running, "no segment's ffmpeg started on the GPU node"
        cluster.remove_node(first, allow_graceful=False)  # SIGKILL: raylet and its workers
        assert list(folder.glob("*.done.json")) == [], "the segment finished before the kill"
        # Another segment's ffmpeg can start on the node as it dies (seen: a worker under 1 s
        # old, already orphaned, started one; it was gone ~0.5 s after the kill). It must die
        # too, so this waits on every segment's ffmpeg, not only the one seen before the kill.
        deadline = time.monotonic() + 10
        while processes_mentioning(f"{folder}/.segment-") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_mentioning(f"{folder}/.segment-") == [], \
            "the lost worker's ffmpeg outlived it"
        cluster.add_node(num_cpus=2, num_gpus=2, **SMALL)  # the retry and the rest go here
        _, stderr = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, stderr
    assert "3 of 3 segments made" in stderr, stderr
    assert framemd5(ffmpeg_bin, out) == reference[0]
    assert audio_md5(ffmpeg_bin, out) == reference[1]
    devices = per_segment_devices(stderr)
    assert sorted(devices) == [0, 1, 2], stderr
    assert set(devices.values()) <= {"0", "1"}, devices  # the node that ran them has two


def test_tasks_running_at_once_see_their_own_gpu(cluster: Cluster, busy_clip: Path,
                                                 tmp_path: Path) -> None:
    """Two segments on a node with two GPUs run at once (each is seconds of work here; the
    done records say when each ffmpeg ran), and each ffmpeg sees its own GPU."""
    cluster.add_node(num_cpus=2, num_gpus=2, **SMALL)
    proc = ffsr(str(busy_clip), "-m", "espcn", "-o", str(tmp_path / "out.mp4"), "--segments",
                "2", "--executor", "ray", "--ray-address", cluster.address,
                "--gpus-per-segment", "1")
    assert proc.returncode == 0, proc.stderr
    runs = {int(i): (cvd, datetime.fromisoformat(started), float(seconds)) for i, cvd, started, seconds
            in re.findall(r"segment (\d+): \d+ frames on \S+ \(CUDA_VISIBLE_DEVICES=(\S*)\), "
                          r"started (\S+), (\S+) s", proc.stderr)}
    assert sorted(runs) == [0, 1], proc.stderr
    (a, a_start, a_s), (b, b_start, b_s) = runs[0], runs[1]
    overlap = min(a_start + timedelta(seconds=a_s), b_start + timedelta(seconds=b_s)) - \
        max(a_start, b_start)
    assert overlap > timedelta(0), f"the two segments did not run at once: {runs}"
    assert {a, b} == {"0", "1"}, runs


def test_ray_worker_without_ffmpeg_is_one_sentence(cluster: Cluster, clips: dict[str, Path],  # noqa: F811
                                                   tmp_path: Path) -> None:
    cluster.add_node(num_cpus=1, num_gpus=1, env_vars={"FFSR_FFMPEG": "/nonexistent/ffmpeg"},
                     **SMALL)
    proc = ffsr(str(clips["gop"]), "-m", "espcn", "-o", str(tmp_path / "o.mp4"), "--segments",
                "2", "--executor", "ray", "--ray-address", cluster.address,
                "--gpus-per-segment", "1")
    # The bars drawn before the task failed stay; the error is the last line, one sentence.
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.fullmatch(r"error: This worker \(\S+\) has no ffmpeg at /nonexistent/ffmpeg: "
                        r"install ffsr's FFmpeg there or set FFSR_FFMPEG\.",
                        proc.stderr.strip().splitlines()[-1]), proc.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_ray_sigterm_stops_every_task(cluster: Cluster, clips: dict[str, Path],  # noqa: F811
                                      tmp_path: Path) -> None:
    """SIGTERM to the driver while tasks run (on the head: no GPUs asked): the tasks are
    cancelled, their ffmpeg ends, finished work stays for --resume, exit 128 + 15."""
    out, folder = tmp_path / "out.mp4", tmp_path / ".out.mp4.ffsr-segments"
    driver = subprocess.Popen(
        [sys.executable, "-m", "ffsr", "upscale", str(clips["gop"]), "-m", "espcn", "-o", str(out),
         "--segments", "3", "--executor", "ray", "--ray-address", cluster.address],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not processes_mentioning(f"{folder}/.segment-") and driver.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == "stopped (SIGTERM)", stderr
    deadline = time.monotonic() + 10
    while processes_mentioning(f"{folder}/.segment-") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(f"{folder}/.segment-") == [], "an ffmpeg outlived the stop"
    assert (folder / "manifest.json").is_file() and not out.exists()


def test_ray_not_installed_is_one_sentence(clips: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    code = ("import sys; sys.modules['ray'] = None; from ffsr.cli import main; "
            "sys.argv[0] = 'ffsr'; main()")
    proc = subprocess.run([sys.executable, "-c", code, "upscale", str(clips["gop"]), "-m", "espcn",
                           "-o", str(tmp_path / "o.mp4"), "--segments", "2", "--executor", "ray"],
                          capture_output=True, text=True, timeout=120)
    one_sentence(proc, r"Ray is not installed; pip install 'ffsr\[ray\]' \(on every node of the "
                       r"cluster\)\.")
    assert not (tmp_path / "o.mp4").exists()


# ---- Kubernetes and Slurm: the index contract


def k8s_job(text: str) -> k8s.V1Job:
    """The manifest as the client's typed V1Job; a field the models do not know, or a
    required one missing, fails (the round trip must give back every field)."""
    data = yaml.safe_load(text)
    api = k8s.ApiClient()
    job = api._ApiClient__deserialize(data, "V1Job")  # type: ignore[attr-defined]
    assert api.sanitize_for_serialization(job) == data, "fields the Kubernetes models lack"
    return job


def plan(clip: Path, out: Path) -> Path:
    proc = ffsr(str(clip), "-m", "espcn", "-o", str(out), "--segments", "3", "--executor", "none")
    assert proc.returncode == 0, proc.stderr
    folder = out.with_name(f".{out.name}.ffsr-segments")
    assert re.search(rf"planned 3 segments in {re.escape(str(folder))}; 3 to make", proc.stderr)
    return folder


def run_worker(argv: list[str], variable: str, index: int) -> None:
    env = {**os.environ, variable: str(index),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "segment done" in proc.stderr, proc.stderr


@pytest.mark.parametrize("scheduler", ["k8s", "slurm"])
def test_index_contract_joins_to_the_single_process_output(
        scheduler: str, clips: dict[str, Path], reference: tuple[list[str], str],  # noqa: F811
        ffmpeg_bin: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    folder = plan(clips["gop"], out)
    cli = [sys.executable, "-m", "ffsr", "segments", f"render-{scheduler}", str(folder), "--gpus",
           "1", "--parallelism", "2"]
    rendered = subprocess.run(cli, capture_output=True, text=True, check=True).stdout
    if scheduler == "k8s":
        job = k8s_job(rendered)
        assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == \
            ("Indexed", 3, 2)
        container = job.spec.template.spec.containers[0]
        assert container.resources.limits == {"nvidia.com/gpu": "1"}
        assert folder.is_relative_to(container.volume_mounts[0].mount_path)
        argv, variable = container.command, "JOB_COMPLETION_INDEX"
    else:
        script = tmp_path / "job.sh"
        script.write_text(rendered)
        assert "#SBATCH --array=0-2%2\n" in rendered and "#SBATCH --gres=gpu:1\n" in rendered
        argv, variable = ["bash", str(script)], "SLURM_ARRAY_TASK_ID"
    for index in (2, 0, 1):  # any order, as a scheduler starts them
        run_worker(argv, variable, index)
    assert len(list(folder.glob("segment-*.done.json"))) == 3
    proc = ffsr(str(clips["gop"]), "-m", "espcn", "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "0 of 3 segments made, 3 kept" in proc.stderr, proc.stderr
    assert framemd5(ffmpeg_bin, out) == reference[0]
    assert audio_md5(ffmpeg_bin, out) == reference[1]


def status(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ffsr", "segments", "status", str(folder)],
                          capture_output=True, text=True, timeout=60)


def test_status_says_what_is_done_where_and_what_is_left(clips: dict[str, Path],  # noqa: F811
                                                        tmp_path: Path) -> None:
    """`ffsr segments status`: for a job an external scheduler runs, which segments are done
    (where, when, in how long), which are left, and which no longer match their records."""
    folder = plan(clips["gop"], tmp_path / "out.mp4")
    proc = subprocess.run([sys.executable, "-m", "ffsr", "segments", "work", str(folder),
                           "--index", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = status(folder)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == lines[2].replace("segment 2", "segment 0") == "segment 0: to make", lines
    assert re.fullmatch(r"segment 1: done, \d+ frames on \S+ \(CUDA_VISIBLE_DEVICES=\), "
                        r"started \d{4}-\d\d-\d\dT\S+\+00:00, \d+\.\d{3} s", lines[1]), lines
    assert lines[3:] == ["1 of 3 segments done; make the rest with `ffsr segments work FOLDER "
                         "--index I`, then join with `ffsr upscale … --resume`."], lines
    with open(folder / "segment-0001.mkv", "r+b") as f:  # damaged after it was done
        f.seek(4096)
        f.write(b"\0" * 64)
    lines = status(folder).stdout.splitlines()
    assert lines[1] == ("segment 1: segment 1's file does not match its done record "
                        "(corrupted?); it is made again."), lines
    assert lines[3].startswith("0 of 3 segments done;"), lines
    one_sentence(status(tmp_path), rf"{re.escape(str(tmp_path))} holds no plan; run `ffsr "
                 r"upscale … --segments N --executor none` first\.")


def test_worker_refusals_are_one_sentence(clips: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    def work(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ffsr", "segments", "work", *args],
                              capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in {**os.environ, **env}.items()
                                   if k not in ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")
                                   or k in env})

    one_sentence(work(str(tmp_path / "elsewhere"), "--index", "0"),
                 rf"This worker \(\S+\) cannot see the work folder {re.escape(str(tmp_path))}"
                 r"/elsewhere \(no readable manifest\.json\): mount the shared storage at the "
                 r"same path on every worker\.")
    clip = tmp_path / "in.mp4"
    clip.write_bytes(clips["gop"].read_bytes())
    folder = plan(clip, tmp_path / "out.mp4")
    one_sentence(work(str(folder)), r"No segment index: pass --index N or run under a scheduler "
                                    r"that sets JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID\.")
    one_sentence(work(str(folder), JOB_COMPLETION_INDEX="3"),
                 r"Segment index 3 is out of range: .* holds segments 0 to 2\.")
    clip.rename(tmp_path / "moved.mp4")
    one_sentence(work(str(folder), SLURM_ARRAY_TASK_ID="1"),
                 rf"This worker \(\S+\) cannot see the input {re.escape(str(clip))}: mount the "
                 r"shared storage at the same path on every worker\.")
    assert list(folder.glob("*.mkv")) == []


@pytest.mark.parametrize(("name", "render"), [("k8s-job.yaml", render_k8s),
                                               ("slurm-array.sh", render_slurm)])
def test_shipped_examples_are_rendered(name: str, render: Any) -> None:
    """deploy/examples/* are the renderer's output for docs/segments.md's example."""
    example = DeployOptions(Path("/shared/videos/.film_x2.mkv.ffsr-segments"), 8, gpus=1,
                            parallelism=4)
    assert (DEPLOY_DIR / "examples" / name).read_text() == render(example)
    if name.endswith(".yaml"):
        assert k8s_job(render(example)).spec.completions == 8
