"""`ffsr graph --runtime docker [--command]`: the `docker run` line a user can paste, made
from the same plan (argv, mounts, image) that `ffsr upscale --runtime docker` runs through
the Docker API, with the same rules: no network, never root, inputs and models read-only.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ffsr.docker_gpu import DRIVER_CAPABILITIES
from ffsr.errors import FfsrError
from ffsr.gpu import wants_gpu
from ffsr.image import USER
from ffsr.model_card import ModelCard
from ffsr.runtime import Mount, container_user
from ffsr.upscale_job import (
    CONTAINER_MODELS,
    CONTAINER_OUT,
    UpscalePlan,
    container_image,
    model_mounts,
)

RUNTIMES = ("local", "docker")
PROGRESS_ARGS = ("-progress", "pipe:1", "-nostats")


def graph_model_dir(runtime: str, model_dir: str | None, command: bool) -> str | None:
    """Where a printed graph says the models are: /models in the image, ``--model-dir`` when
    given, else this machine's own paths (None)."""
    if runtime not in RUNTIMES:
        raise FfsrError(f"Unknown runtime '{runtime}'; choose local or docker.")
    if model_dir and (runtime == "docker" or command):
        raise FfsrError("--model-dir is for a bare graph; commands (and --runtime docker) mount "
                        "the models where their graph looks.")
    return CONTAINER_MODELS if runtime == "docker" else model_dir


def mount_flags(mounts: Sequence[Mount]) -> list[str]:
    return [a for m in mounts
            for a in ("-v", f"{m.host}:{m.container}{':ro' if m.read_only else ''}")]


def mounts_hint(cards: Sequence[ModelCard]) -> str:
    """What a bare container graph needs besides itself: its models under /models."""
    return f"mount the models with: {shlex.join(mount_flags(model_mounts(cards)))}"


def docker_run_argv(plan: UpscalePlan) -> list[str]:
    """The plan's ffmpeg argv inside ``docker run``: the output goes straight to /out (the
    upscale job stages it and checks it first; a pasted line writes it as ffmpeg does)."""
    req = plan.request
    if req.runtime != "docker":
        raise FfsrError("A docker command needs a plan made with --runtime docker.")
    partial = f"{CONTAINER_OUT}/{plan.partial.name}"
    final = f"{CONTAINER_OUT}/{plan.output.name}"
    argv = [final if a == partial else a for a in plan.argv if a not in PROGRESS_ARGS]
    mounts = [*plan.mounts, Mount(plan.output.parent.resolve(), CONTAINER_OUT, False)]
    run = ["docker", "run", "--rm", "--network", "none", "--user", container_user() or USER]
    if wants_gpu(req.device, req.encoder):
        run += gpu_flags(None)
    return [*run, *mount_flags(mounts), "--entrypoint", argv[0], container_image(req), *argv[1:]]


def gpu_flags(devices: str | None) -> list[str]:
    """``docker run``'s GPUs: ``devices`` (a worker's CUDA_VISIBLE_DEVICES, as Ray or Slurm
    set it), else all. Without 'video' the NVIDIA toolkit leaves out libnvidia-encode:
    NVENC would not open."""
    which = f'"device={devices}"' if devices else "all"
    return ["--gpus", which, "-e",
            f"NVIDIA_DRIVER_CAPABILITIES={','.join(DRIVER_CAPABILITIES[1:])}"]


def command_line(plan: UpscalePlan) -> str:
    """What `ffsr graph --command` prints: the ffmpeg line, or the docker run line around it."""
    return shlex.join(docker_run_argv(plan)) if plan.request.runtime == "docker" \
        else plan.command_line()


def output_note(plan: UpscalePlan) -> str | None:
    """When the image's own user writes the output, its folder must let that user in."""
    if plan.request.runtime != "docker" or container_user():
        return None
    return (f"the container runs as the image's user '{USER}' (you are root): make "
            f"{plan.output.parent} writable for it, e.g. chmod o+w.")
