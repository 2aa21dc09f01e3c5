"""The manifest: what a segmented job was made from, so that resume never mixes runs.

It names the source (size, a hash of its head and tail, duration), the segments, the
filter graph and encoder command, the models' sha256s and the ffsr and FFmpeg versions.
A resume compares the manifest it would write with the one on disk, part by part, and
refuses with one sentence naming the first part that differs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.segments.frames import Segment

MANIFEST = "manifest.json"
HEAD_TAIL_BYTES = 1 << 20
FORMAT = 1


def source_identity(path: Path, duration: float | None) -> dict[str, Any]:
    """Size, sha256 of the first and last MiB, duration: cheap on a 100 GB file, and
    changed by any re-encode, trim or append."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(HEAD_TAIL_BYTES))
        f.seek(max(0, size - HEAD_TAIL_BYTES))
        h.update(f.read(HEAD_TAIL_BYTES))
    return {"path": str(path.resolve()), "size": size, "head_tail_sha256": h.hexdigest(),
            "duration": duration}


def build_manifest(*, source: dict[str, Any], segments: list[Segment], graph: str,
                   command: list[str], models: dict[str, str], ffsr_version: str,
                   ffmpeg: dict[str, str]) -> dict[str, Any]:
    return {"format": FORMAT, "source": source, "segments": [asdict(s) for s in segments],
            "graph": graph, "command": command, "models": models,
            "versions": {"ffsr": ffsr_version, **{f"ffmpeg_{k}": v for k, v in ffmpeg.items()}}}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Written to a temporary name and renamed: a crash never leaves half a manifest."""
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_resumable(saved: dict[str, Any] | None, now: dict[str, Any], folder: Path) -> None:
    """One sentence for the first difference that makes the saved segments unusable
    (``now`` without segments: the checks that need no cut)."""
    if saved is None:
        raise FfsrError(f"Nothing to resume: {folder} holds no readable manifest; run without "
                        "--resume.")
    fresh = "pass --overwrite instead of --resume to start over"
    source = saved.get("source", {})
    if source.get("size") != now["source"]["size"] or \
            source.get("head_tail_sha256") != now["source"]["head_tail_sha256"] or \
            source.get("duration") != now["source"]["duration"]:
        raise FfsrError(f"The segments in {folder} were made from another input than "
                        f"{now['source']['path']} (size or content differ); {fresh}.")
    if saved.get("models") != now["models"]:
        raise FfsrError(f"The segments in {folder} were made with other model files; {fresh}.")
    if saved.get("versions") != now["versions"]:
        raise FfsrError(f"The segments in {folder} were made by another ffsr or FFmpeg "
                        f"version; {fresh}.")
    if saved.get("graph") != now["graph"] or saved.get("command") != now["command"] or \
            saved.get("segments") != now.get("segments", saved.get("segments")) or \
            saved.get("format") != FORMAT:
        raise FfsrError(f"The segments in {folder} were made with other options (filter graph, "
                        f"encoder or --segments); {fresh}.")
