"""Stop signals on a real `ffsr upscale`: SIGTERM, SIGINT and SIGHUP stop its ffmpeg (and
its container) before ffsr exits with 128 + the signal; no ffmpeg outlives it, no partial
file stays. Checked by reading /proc, as `ps` would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_inputs import espcn, espcn_cache, espcn_card  # noqa: F401  (fixtures: ESPCN converted once, ONNX only)

pytest.importorskip("torch")

FRAMES = 3000  # ~1 min of ESPCN at 320x240 on 2 cores: still running when the signal comes


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory, ffmpeg_bin: Path) -> Path:
    folder = tmp_path_factory.mktemp("long")
    folder.chmod(0o755)  # the image's non-root user reads it in the container test
    clip = folder / "long.mp4"
    subprocess.run([str(ffmpeg_bin), "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=size=320x240:rate=25,trim=end_frame={FRAMES}",
                    "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True)
    return clip


def default_stop_signals() -> None:
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def start_upscale(clip: Path, out: Path, *extra: str) -> tuple[subprocess.Popen[str], list[int]]:
    """`ffsr upscale` in its own session, once its ffmpeg is writing the partial output;
    returns the process and the pids of what writes that output."""
    # As from a terminal: a suite started under nohup (SIGHUP) or as a background job of a
    # script (SIGINT) passes those signals on ignored, and ffsr rightly keeps an ignored
    # signal ignored (signals._replaceable).
    proc = subprocess.Popen([sys.executable, "-m", "ffsr", "upscale", str(clip), "-m", "espcn",
                             "-o", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=default_stop_signals)
    marker = f".{out.stem}.ffsr-partial"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        partials = [p for p in out.parent.rglob(f"{marker}*") if p.is_file() and p.stat().st_size > 0]
        if partials and (writers := processes_mentioning(marker)):
            return proc, writers
        if proc.poll() is not None:
            pytest.fail(f"ffsr ended before the signal: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("ffsr never started writing its output")


def assert_stopped_cleanly(proc: subprocess.Popen[str], writers: list[int], out: Path,
                           signum: int, inputs: set[str]) -> None:
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"stopped ({signal.Signals(signum).name})"
    assert processes_mentioning(f".{out.stem}.ffsr-partial") == []
    for pid in writers:
        assert not Path(f"/proc/{pid}").exists() or pid == proc.pid, f"process {pid} outlived ffsr"
    assert {p.name for p in out.parent.iterdir()} == inputs, "something was left behind"


@pytest.mark.parametrize(("signum", "to_group"), [
    (signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, False),
    (signal.SIGINT, True),  # Ctrl-C in a terminal: ffmpeg gets it too
], ids=["TERM", "HUP", "INT", "INT-group"])
@pytest.mark.usefixtures("espcn")
def test_signal_stops_ffmpeg_and_leaves_nothing(long_clip: Path,
                                                tmp_path: Path, signum: int, to_group: bool) -> None:
    out = tmp_path / "out.mp4"
    proc, writers = start_upscale(long_clip, out)
    (os.killpg if to_group else os.kill)(proc.pid, signum)
    assert_stopped_cleanly(proc, writers, out, signum, set())


@pytest.mark.usefixtures("espcn")
def test_sigkill_takes_ffmpeg_down_too(long_clip: Path,
                                       tmp_path: Path) -> None:
    """No cleanup can run after SIGKILL, but ffmpeg must not go on alone (PR_SET_PDEATHSIG)."""
    out = tmp_path / "out.mp4"
    proc, _ = start_upscale(long_clip, out)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while processes_mentioning(f".{out.stem}.ffsr-partial") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(f".{out.stem}.ffsr-partial") == []


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.usefixtures("espcn")
def test_sigterm_stops_the_container(long_clip: Path,
                                     tmp_path: Path, docker_api: Any, cpu_image: str) -> None:
    """The container's ffmpeg is a process of this machine too: it must be gone, and the
    container removed."""
    out = tmp_path / "out.mp4"
    before = {c["Id"] for c in docker_api.containers(all=True)}
    proc, writers = start_upscale(long_clip, out, "--runtime", "docker")
    assert {c["Id"] for c in docker_api.containers()} - before, "no container is running"
    os.kill(proc.pid, signal.SIGTERM)
    assert_stopped_cleanly(proc, writers, out, signal.SIGTERM, set())
    assert {c["Id"] for c in docker_api.containers(all=True)} - before == set()


def test_a_child_whose_parent_died_before_it_could_ask_for_the_signal_dies() -> None:
    """die_with_parent's race: the parent is gone between the fork and the prctl, so no
    SIGKILL will ever come. Simulated by forking between making the hook and using it: the
    child's parent is then not the process that made the hook, and the child must die
    before it runs anything (without the check, `sleep` runs and exits 0)."""
    from ffsr.signals import die_with_parent

    hook = die_with_parent()
    pid = os.fork()
    if pid == 0:  # another process than the hook's maker starts the child
        code = 1
        try:
            rc = subprocess.Popen(["sleep", "0.2"], preexec_fn=hook).wait()
            code = 0 if rc == -signal.SIGKILL else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
