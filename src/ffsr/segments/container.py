"""Segments in the ffsr image (`ffsr upscale --segments N --runtime docker`): each segment's
ffmpeg runs in `docker run`, wherever the segment runs (here, a Ray task, a Slurm task);
the plan, a pre-pass and the join run here with this machine's ffmpeg, as the
single-process `--runtime docker` probes with it.

The container sees the source's folder at /in and each model at /models/<name> (read-only:
the single-process run's mounts), the work folder at /work (read-only: a pre-pass file) and
a staging folder at /out that the image's user can write. Its graph is the plan's, rendered
for those model paths. No network, never root, ``--pull never``: it runs the image the driver
planned with, by id (the manifest's versions name it, so a resume with another image is
refused).

Nothing outlives the job. The docker client passes SIGTERM on, so ffmpeg stops cleanly. A
SIGKILL of ffsr or of the client would leave the container running, so its shell also stops
ffmpeg when its stdin closes: ``docker run -i`` keeps that open only while the client is
attached, and the executor holds the client's stdin open for the task's life (Task.lifeline).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from ffsr.docker_command import gpu_flags, mount_flags
from ffsr.errors import FfsrError
from ffsr.gpu import wants_gpu
from ffsr.image import USER
from ffsr.runtime import Mount, container_user
from ffsr.upscale_job import CONTAINER_IN, CONTAINER_OUT, UpscalePlan, container_image

CONTAINER_WORK = "/work"
WORK_LABEL = "ffsr.work"
"""Each segment container's label: the work folder it writes for."""
IMAGE_FFMPEG = "ffmpeg"
"""The image's PATH puts ffsr's ffmpeg first."""

LIFELINE = """exec 3<&0
"$0" "$@" </dev/null 3<&- & pid=$!
(cat <&3 >/dev/null; kill -TERM $pid 2>/dev/null) &
exec 3<&-
trap 'kill -TERM $pid 2>/dev/null' TERM INT HUP
wait $pid; rc=$?
while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
exit $rc"""
"""The container's shell: ffmpeg, stopped by SIGTERM (passed on by the docker client) or
when stdin closes (the client is gone); its exit status is the container's."""


def planned_image(plan: UpscalePlan) -> str:
    """The id of the image the plan's segments run in (one sentence when it is missing)."""
    from ffsr.image import connect, image_id

    return image_id(connect(timeout=60), container_image(plan.request))


def image_spec(plan: UpscalePlan, image: str, graph: str) -> dict[str, Any]:
    """What a worker needs to run its segment in the image (the manifest's worker.docker):
    ``image``, its id (planned_image); ``graph``, the worker's, with the models where the
    image sees them (container_cards)."""
    req = plan.request
    return {"image": image, "tag": container_image(req),
            "gpu": wants_gpu(req.device, req.encoder), "graph": graph,
            "mounts": [[str(m.host), m.container] for m in plan.mounts]}


def container_source(source: Path, folder: Path) -> str:
    """Where the image sees a worker's input: the pre-pass file in /work, else /in."""
    source, folder = source.resolve(), folder.resolve()
    if source.is_relative_to(folder):
        return f"{CONTAINER_WORK}/{source.relative_to(folder)}"
    return f"{CONTAINER_IN}/{source.name}"


def check_image(spec: dict[str, Any]) -> None:
    """One sentence when this worker cannot run the image: no docker client, or no image
    with the planned id."""
    host = socket.gethostname()
    if not shutil.which("docker"):
        raise FfsrError(f"This worker ({host}) has no docker command, and the segments run in the "
                        "ffsr image (--runtime docker): install Docker there.")
    found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", spec["image"]],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise FfsrError(f"This worker ({host}) does not have the image {spec['tag']} "
                        f"({spec['image'][:19]}) the segments were planned with: copy it there "
                        "(docker save | docker load).")


def docker_argv(spec: dict[str, Any], ffmpeg_args: list[str], folder: Path, staging: Path,
                devices: str | None) -> list[str]:
    """``docker run`` of ffmpeg with ``ffmpeg_args`` (paths as the image sees them) under
    the LIFELINE shell; ``devices``: the worker's CUDA_VISIBLE_DEVICES."""
    mounts = [*(Mount(Path(host), container, True) for host, container in spec["mounts"]),
              Mount(folder.resolve(), CONTAINER_WORK, True),
              Mount(staging.resolve(), CONTAINER_OUT, False)]
    run = _docker_run(mounts, "-i", "--label", f"{WORK_LABEL}={folder.resolve()}",
                      "--label", f"ffsr.segment={staging.resolve()}")
    if spec["gpu"]:
        run += gpu_flags(devices)
    return [*run, "--entrypoint", "sh", spec["image"], "-c", LIFELINE, IMAGE_FFMPEG,
            *ffmpeg_args]


def remove_unstarted(folder: Path) -> None:
    """Remove this job's containers that were created but never started: a docker client
    killed between the two (ffsr killed at that moment) leaves one behind, and no lifeline
    reaches a container that never ran."""
    from ffsr.image import connect

    api = connect(timeout=60)
    for c in api.containers(all=True, filters={"label": f"{WORK_LABEL}={folder.resolve()}",
                                                "status": "created"}):
        api.remove_container(c["Id"], force=True)


def _docker_run(mounts: list[Mount], *flags: str) -> list[str]:
    return ["docker", "run", "--rm", *flags, "--pull", "never", "--network", "none",
            "--user", container_user() or USER, *mount_flags(mounts)]


def staging_folder(folder: Path, name: str) -> Path:
    """A folder in the work folder that the image's user can write (it may not be this
    machine's user: as root, the container runs as the image's own user)."""
    staging = folder / f".staging-{name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    staging.chmod(0o777)
    return staging
