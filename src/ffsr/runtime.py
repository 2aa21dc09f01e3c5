"""Where the ffmpeg command runs: the local ffsr-built binary, or the ffsr Docker image."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate, parse_progress


@dataclass
class RunResult:
    returncode: int
    frames: int
    log: str


def run_local(argv: Sequence[str], log_path: Path,
              on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunResult:
    """Run ffmpeg with ``-progress pipe:1``; stderr goes to ``log_path``; Ctrl-C stops it."""
    with open(log_path, "w") as log:
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=log, text=True,
                                    stdin=subprocess.DEVNULL)
        except OSError as e:
            raise FfsrError(f"Cannot start {argv[0]}: {e.strerror}.") from e
        assert proc.stdout is not None
        try:
            frames = parse_progress(proc.stdout, on_progress or (lambda _: None))
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    return RunResult(rc, frames, log_path.read_text(errors="replace"))


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool


def run_docker(image: str, argv: Sequence[str], mounts: Sequence[Mount], log_path: Path,
               gpu: bool, on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunResult:
    """The same ffmpeg argv inside the ffsr image: no network, non-root, inputs read-only,
    container removed afterwards, Ctrl-C stops it."""
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError as e:
        raise FfsrError("The docker Python package is missing: pip install docker.") from e
    try:
        client = docker.from_env(timeout=10)  # type: ignore[attr-defined]
        client.ping()
    except DockerException as e:
        if "Permission denied" in str(e):
            raise FfsrError("Permission denied on the Docker socket: add your user to the "
                            "docker group (or run with --runtime local).") from e
        raise FfsrError("No Docker engine is reachable: start dockerd, or use --runtime local.") from e
    try:
        client.images.get(image)
    except ImageNotFound as e:
        raise FfsrError(f"Docker image {image} not found: run `ffsr build-image` first.") from e
    device_requests = []
    if gpu:
        device_requests = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]  # type: ignore[attr-defined]
    volumes = {str(m.host): {"bind": m.container, "mode": "ro" if m.read_only else "rw"}
               for m in mounts}
    container = client.containers.run(
        image, command=list(argv[1:]), entrypoint=[argv[0]], detach=True, network_mode="none",
        user=f"{os.getuid()}:{os.getgid()}", volumes=volumes, device_requests=device_requests,
        stdout=True, stderr=True)
    frames = 0
    try:
        stream = container.logs(stream=True, stdout=True, stderr=False, follow=True)
        lines = (chunk.decode(errors="replace") for chunk in stream)
        frames = parse_progress((line for text in lines for line in text.splitlines()),
                                on_progress or (lambda _: None))
        rc = int(container.wait().get("StatusCode", 1))
        log = container.logs(stdout=False, stderr=True).decode(errors="replace")
    except KeyboardInterrupt:
        container.stop(timeout=5)
        raise
    finally:
        container.remove(force=True)
    log_path.write_text(log)
    return RunResult(rc, frames, log)
