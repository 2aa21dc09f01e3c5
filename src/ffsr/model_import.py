"""`-m PATH`: a model file given directly is imported on first use through convert-model's
--checkpoint path (verified, card written) and cached under a name carrying its sha256, so
the same bytes are imported once and a changed file is imported afresh."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ffsr.errors import FfsrError
from ffsr.model_card import ModelCard, find_card

MODEL_FILE_SUFFIXES = (".onnx", ".pb", ".pt", ".pth", ".safetensors")


def is_model_file(model: str) -> bool:
    """A -m value naming a model file (by suffix) rather than a zoo name or a card."""
    return Path(model).suffix.lower() in MODEL_FILE_SUFFIXES


def cache_name(path: Path, digest: str) -> str:
    """The file's stem made safe for paths and filter strings, plus 12 hex digits of sha256."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.name.split(".")[0]).strip("-") or "model"
    return f"{stem[:40]}-{digest[:12]}"


def import_model_file(model: str, log: Callable[[str], None]) -> ModelCard:
    """The card for a model file: the cached import when these bytes were imported before."""
    from ffsr.zoo import sha256_file

    path = Path(model).expanduser()
    if not path.is_file():
        raise FfsrError(f"Model file not found: {path}")
    digest = sha256_file(path)
    name = cache_name(path, digest)
    try:
        card = find_card(name)
    except FfsrError:
        pass
    else:
        log(f"model {path.name}: {name} (imported before, same sha256 {digest[:12]})")
        return card
    from ffsr.convert_model import convert_checkpoint

    log(f"model {path.name}: importing as {name} (first use, sha256 {digest[:12]})…")
    return convert_checkpoint(path, name=name, log=log)
