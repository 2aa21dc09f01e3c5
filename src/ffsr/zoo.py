"""The model zoo: one JSON manifest per model under models/ (see models/README.md)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffsr.errors import FfsrError
from ffsr.paths import MODELS_DIR, SHARED_DATA_DIR


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    arch: str
    scale: int
    color: str  # "y" (luma only) or "rgb"
    source: dict[str, Any]
    notes: str = ""

    @property
    def source_path(self) -> Path:
        """Checkpoint location: relative paths are under $FFSR_DATA_DIR (default ../shared/data)."""
        p = Path(self.source["path"])
        return p if p.is_absolute() else data_dir() / p

    def source_files(self) -> list[Path]:
        """The files whose sha256 the manifest pins."""
        base = self.source_path.parent
        return [base / name for name in self.source["sha256"]]

    def verify_source(self) -> None:
        """Refuse a checkpoint whose files are missing or differ from the pinned sha256."""
        for path, want in zip(self.source_files(), self.source["sha256"].values(), strict=True):
            if not path.is_file():
                raise FfsrError(f"Checkpoint file for {self.name} not found: {path} "
                                "(set FFSR_DATA_DIR to the folder holding checkpoints/).")
            got = sha256_file(path)
            if got != want:
                raise FfsrError(f"Checksum mismatch for {path}: expected {want[:16]}…, got "
                                f"{got[:16]}…; refusing to convert a file that is not the pinned one.")


def data_dir() -> Path:
    env = os.environ.get("FFSR_DATA_DIR")
    return Path(env) if env else SHARED_DATA_DIR


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(path: Path) -> Manifest:
    data = json.loads(path.read_text())
    return Manifest(name=data["name"], title=data["title"], arch=data["arch"],
                    scale=int(data["scale"]), color=data["color"], source=data["source"],
                    notes=data.get("notes", ""))


def zoo() -> dict[str, Manifest]:
    return {m.name: m for m in (load_manifest(p) for p in sorted(MODELS_DIR.glob("*.json")))}


def get_manifest(name: str) -> Manifest:
    models = zoo()
    if name not in models:
        raise FfsrError(f"Unknown model '{name}'; the zoo has: {', '.join(models)} "
                        "(or pass --checkpoint PATH).")
    return models[name]
