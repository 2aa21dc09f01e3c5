"""Manifests for cluster schedulers that run one segment per index: a Kubernetes Indexed
Job and a Slurm job array. Each runs `ffsr segments work FOLDER`, which takes its index from
the scheduler's variable (segments.work.INDEX_VARIABLES). The templates (deploy/*.j2) hold
the shape; this module holds the values."""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import jinja2

from ffsr.errors import FfsrError
from ffsr.paths import DEPLOY_DIR


@dataclass(frozen=True)
class DeployOptions:
    folder: Path
    """The work folder, as every worker sees it (shared storage, same path)."""
    segments: int
    image: str | None = None
    """Kubernetes: the container image, which has ffsr and its ffmpeg (None: the tag
    `ffsr build-image` gives the cpu flavour, or the cuda one with GPUs)."""
    gpus: int = 0
    """GPUs per segment (Kubernetes nvidia.com/gpu, Slurm --gres=gpu:N)."""
    cpus: int = 1
    parallelism: int | None = None
    """Segments that run at once (None: all)."""
    claim: str = "ffsr-shared"
    """Kubernetes: the PersistentVolumeClaim of the shared storage."""
    mount: Path | None = None
    """Kubernetes: where the claim is mounted (None: the work folder's parent)."""
    retries: int = 3
    partition: str | None = None
    """Slurm: the partition (None: the cluster's default)."""
    ffsr: str = "ffsr"
    """The ffsr command on the workers."""


def _name(folder: Path) -> str:
    """A Kubernetes/Slurm job name from the output's name: lowercase DNS label."""
    stem = folder.name.removesuffix(".ffsr-segments").lstrip(".")
    label = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40].strip("-")
    return f"ffsr-{label}" if label else "ffsr-segments"


def _values(opts: DeployOptions) -> dict[str, object]:
    if opts.segments < 1:
        raise FfsrError("The plan has no segments to run.")
    if not opts.folder.is_absolute():
        raise FfsrError(f"The work folder {opts.folder} must be an absolute path (the same on "
                        "every worker).")
    mount = opts.mount or opts.folder.parent
    if not opts.folder.is_relative_to(mount):
        raise FfsrError(f"The work folder {opts.folder} is not under the mount {mount}.")
    values = asdict(opts)
    from ffsr.image import default_tag

    values.update(folder=str(opts.folder), mount=str(mount), name=_name(opts.folder),
                  image=opts.image or default_tag("cuda" if opts.gpus else "cpu"),
                  parallelism=min(opts.parallelism or opts.segments, opts.segments),
                  command=[opts.ffsr, "segments", "work", str(opts.folder)])
    return values


def render(template: str, opts: DeployOptions) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(DEPLOY_DIR), autoescape=False,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             keep_trailing_newline=True)
    env.filters["sh"] = shlex.quote
    return env.get_template(template).render(**_values(opts))


def render_k8s(opts: DeployOptions) -> str:
    return render("k8s-job.yaml.j2", opts)


def render_slurm(opts: DeployOptions) -> str:
    return render("slurm-array.sh.j2", opts)
