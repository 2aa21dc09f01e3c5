"""Where the ffmpeg command runs: the local ffsr-built binary, or the ffsr Docker image."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.progress import ProgressUpdate, parse_progress
from ffsr.signals import die_with_parent

STOP_TIMEOUT_S = 10
"""How long ffmpeg (or a container) gets to stop on SIGTERM before it is killed."""


@dataclass
class RunResult:
    returncode: int
    frames: int
    log: str


def run_local(argv: Sequence[str], log_path: Path,
              on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunResult:
    """Run ffmpeg with ``-progress pipe:1``; stderr goes to ``log_path``. Whatever ends
    ffsr's wait (Ctrl-C, a stop signal, an error) stops ffmpeg before it propagates."""
    with open(log_path, "w") as log:
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=log, text=True,
                                    stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())
        except OSError as e:
            raise FfsrError(f"Cannot start {argv[0]}: {e.strerror}.") from e
        assert proc.stdout is not None
        try:
            frames = parse_progress(proc.stdout, on_progress or (lambda _: None))
            rc = proc.wait()
        except BaseException:
            stop_process(proc)
            raise
    return RunResult(rc, frames, log_path.read_text(errors="replace"))


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (ffmpeg finishes cleanly), then SIGKILL after STOP_TIMEOUT_S; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    read_only: bool


@contextmanager
def writable_staging(parent: Path) -> Iterator[Path]:
    """A temporary folder in ``parent`` that the image's non-root user can write; removed
    afterwards, so whatever the container leaves there never looks like a finished file."""
    staging = Path(tempfile.mkdtemp(prefix=".ffsr-staging-", dir=parent.resolve()))
    try:
        staging.chmod(0o777)
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def container_user() -> str | None:
    """The caller's uid:gid, or the image's own non-root user when the caller is root."""
    return None if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"


def run_container(image: str, argv: Sequence[str], mounts: Sequence[Mount], gpu: bool,
                  on_stdout: Callable[[Iterable[str]], object] | None = None,
                  environment: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``argv`` (argv[0] is the entrypoint) in ``image``: no network, never as root
    (see container_user), mounts as given, removed afterwards, stopped on Ctrl-C. ``on_stdout`` consumes
    stdout lines while it runs; returns (exit status, stderr)."""
    from docker.errors import DockerException
    from urllib3.exceptions import HTTPError

    from ffsr.docker_gpu import start_container
    from ffsr.image import connect, engine_error, image_id

    api = connect(timeout=600)
    image_id(api, image)
    device_requests = []
    if gpu:
        from ffsr.docker_gpu import device_requests as gpu_device_requests
        from ffsr.docker_gpu import engine_gpu_support

        device_requests = gpu_device_requests(engine_gpu_support(api.info()))
    # Absolute host paths only: Docker takes a relative one for the name of a volume.
    binds = {str(m.host.resolve()): {"bind": m.container, "mode": "ro" if m.read_only else "rw"}
             for m in mounts}
    try:
        host_config = api.create_host_config(binds=binds, network_mode="none",
                                             device_requests=device_requests or None)
        container = api.create_container(image, command=list(argv[1:]), entrypoint=[argv[0]],
                                         user=container_user(),
                                         environment=environment, host_config=host_config)
        cid = container["Id"]
    except DockerException as e:
        raise engine_error(e, "create the container") from None
    try:
        start_container(api, cid)
        stream = api.logs(cid, stream=True, follow=True, stdout=True, stderr=False)
        lines = (line for chunk in stream for line in chunk.decode(errors="replace").splitlines())
        if on_stdout:
            on_stdout(lines)
        else:
            for _ in lines:
                pass
        rc = int(api.wait(cid).get("StatusCode", 1))
        err = api.logs(cid, stdout=False, stderr=True).decode(errors="replace")
    except BaseException as e:
        # Ctrl-C, a stop signal or a lost stream: the container must not run on.
        with contextlib.suppress(Exception):
            api.stop(cid, timeout=STOP_TIMEOUT_S)
        if isinstance(e, (DockerException, OSError, HTTPError)):  # the engine went away
            raise engine_error(e, "run the container") from None
        raise
    finally:
        with contextlib.suppress(Exception):
            api.remove_container(cid, force=True)
    return rc, err


def run_docker(image: str, argv: Sequence[str], mounts: Sequence[Mount], log_path: Path,
               gpu: bool, on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunResult:
    """The same ffmpeg argv as run_local, inside the ffsr image."""
    frames = 0

    def consume(lines: Iterable[str]) -> None:
        nonlocal frames
        frames = parse_progress(lines, on_progress or (lambda _: None))

    rc, log = run_container(image, argv, mounts, gpu, consume)
    log_path.write_text(log)
    return RunResult(rc, frames, log)
