"""`--segments N --runtime docker`: each segment's ffmpeg runs in the ffsr image (here, or in
a Ray task on any node), the join here; the output equals the single-process
`--runtime docker` run frame for frame (framemd5, audio bit-exact). No container outlives
the driver, even after a `kill -9` (the containers' stdin lifeline: segments.container),
and `--resume` then finishes the job.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ray.cluster_utils import Cluster
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (fixtures: ESPCN converted once)
from test_segment_executors import cluster  # noqa: F401  (fixture: a local Ray cluster)
from test_segments import (  # noqa: F401  (lean_ffmpeg, clips: fixtures)
    audio_md5,
    clips,
    ffsr,
    framemd5,
    lean_ffmpeg,
    make,
    one_sentence,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cpu_image")]


@pytest.fixture(scope="module")
def readable_clip(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The open-GOP clip in a folder the image's user may read (pytest's own are 0700)."""
    folder = tmp_path_factory.mktemp("docker-clip")
    folder.chmod(0o755)
    return Path(shutil.copy(clips["gop"], folder / "gop.mp4"))


@pytest.fixture(scope="module")
def image_reference(readable_clip: Path, ffmpeg_bin: Path, espcn_cache: Path,  # noqa: F811
                    tmp_path_factory: pytest.TempPathFactory, cpu_image: str) -> tuple[list[str], str]:
    """framemd5 and audio md5 of the single-process run in the image."""
    out = tmp_path_factory.mktemp("docker-reference") / "single.mp4"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(espcn_cache))
        proc = ffsr(str(readable_clip), "-m", "espcn", "--runtime", "docker", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return framemd5(ffmpeg_bin, out), audio_md5(ffmpeg_bin, out)


def segment_containers(docker_api: Any) -> list[str]:
    return [c["Id"] for c in docker_api.containers(all=True, filters={"label": "ffsr.segment"})]


def test_ray_tasks_run_their_segment_in_the_image(cluster: Cluster, readable_clip: Path,  # noqa: F811
                                                  ffmpeg_bin: Path, tmp_path: Path,
                                                  image_reference: tuple[list[str], str],
                                                  docker_api: Any) -> None:
    out, before = tmp_path / "out.mp4", segment_containers(docker_api)
    proc = ffsr(str(readable_clip), "-m", "espcn", "-o", str(out), "--segments", "3",
                "--runtime", "docker", "--executor", "ray", "--ray-address", cluster.address)
    assert proc.returncode == 0, proc.stderr
    assert "3 of 3 segments made" in proc.stderr, proc.stderr
    frames, audio = image_reference
    assert framemd5(ffmpeg_bin, out) == frames
    assert audio_md5(ffmpeg_bin, out) == audio
    assert segment_containers(docker_api) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.fixture(scope="module")
def slow_clip(readable_clip: Path, ffmpeg_bin: Path) -> Path:
    """200 frames at 960x540: each of 2 segments keeps ESPCN busy for several seconds here."""
    clip = readable_clip.parent / "slow.mp4"
    make(ffmpeg_bin, "-f", "lavfi", "-i", "testsrc2=size=960x540:rate=25:duration=8", "-c:v",
         "libx264", "-preset", "ultrafast", "-g", "50", str(clip))
    return clip


def running(docker_api: Any, before: set[str]) -> set[str]:
    return {c["Id"] for c in docker_api.containers(filters={"label": "ffsr.segment"})} - before


def test_kill_9_leaves_no_container_and_resume_finishes(slow_clip: Path, ffmpeg_bin: Path,
                                                        tmp_path: Path, docker_api: Any) -> None:
    """SIGKILL of ffsr: nothing can clean up, yet the running container stops within
    seconds (without the stdin lifeline it runs its segment to the end: this test then
    fails); --resume removes what never started and finishes the job."""
    out, folder = tmp_path / "out.mp4", tmp_path / ".out.mp4.ffsr-segments"
    before = set(segment_containers(docker_api))
    driver = subprocess.Popen([sys.executable, "-m", "ffsr", "upscale", str(slow_clip), "-m",
                               "espcn", "-o", str(out), "--segments", "2", "--runtime", "docker"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(folder.glob(".staging-*/*.partial.mkv")) and driver.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(docker_api, before), "no segment container is writing"
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    killed = time.monotonic()
    while running(docker_api, before) and time.monotonic() < killed + 5:
        time.sleep(0.1)
    assert running(docker_api, before) == set(), "a segment's container outlived ffsr"
    proc = ffsr(str(slow_clip), "-m", "espcn", "-o", str(out), "--segments", "2",
                "--runtime", "docker", "--resume")
    assert proc.returncode == 0, proc.stderr
    assert len([ln for ln in framemd5(ffmpeg_bin, out) if not ln.startswith("#")]) == 200
    assert not folder.exists()
    assert set(segment_containers(docker_api)) <= before


def test_a_missing_image_is_one_sentence(readable_clip: Path, tmp_path: Path) -> None:
    one_sentence(ffsr(str(readable_clip), "-m", "espcn", "-o", str(tmp_path / "o.mp4"),
                      "--segments", "2", "--runtime", "docker", "--image", "ffsr:no-such-tag"),
                 r"Docker image ffsr:no-such-tag not found: run `ffsr build-image` first\.")
    assert list(tmp_path.iterdir()) == []


def test_a_prepass_job_in_the_image_equals_the_single_process_run(readable_clip: Path,
                                                                  ffmpeg_bin: Path,
                                                                  tmp_path: Path) -> None:
    """The workers read the pre-pass file from the work folder (/work in the image), with the
    output given relative to the working folder, as a user types it."""
    outs = []
    for name, extra in (("single.mkv", []), ("segmented.mkv", ["--segments", "2"])):
        proc = subprocess.run([sys.executable, "-m", "ffsr", "upscale", str(readable_clip), "-m",
                               "espcn", "--deinterlace", "--fps", "50", "--runtime", "docker",
                               "-o", name, *extra], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        outs.append(framemd5(ffmpeg_bin, tmp_path / name))
    assert outs[0] == outs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segmented.mkv", "single.mkv"]
