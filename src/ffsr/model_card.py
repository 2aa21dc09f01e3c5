"""The model card: what conversion learned about a model, read by graph rendering and
the runtime so that no later stage re-derives it (scale, colour, tensor names, files)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ffsr.backends import get_backend
from ffsr.errors import FfsrError
from ffsr.paths import converted_models_dir

CARD_SUFFIX = ".card.json"
TF_GRAPH_ARCH = "tensorflow-graph"
"""Arch of an imported frozen TF graph: it has a tensorflow file only (no tf2onnx here)."""


@dataclass(frozen=True)
class ModelFile:
    """One FFmpeg-loadable file of a model."""

    backend: str
    path: str  # relative to the card's directory
    sha256: str
    input: str = "x"
    output: str = "y"
    channels: int = 1
    """Channels of the tensor FFmpeg feeds (LibTorch: always 3, Y models are wrapped)."""
    filters: tuple[str, ...] = ("dnn_processing",)
    fidelity: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCard:
    name: str
    arch: str
    scale: int
    """Whole-pipeline scale (SRCNN: 2, its net is same-size after a bicubic pre-scale)."""
    model_scale: int
    """Output/input size ratio of the network itself."""
    color: str  # y | rgb
    files: dict[str, ModelFile]
    source: dict[str, Any]
    licence: str
    directory: Path = Path(".")

    @property
    def prescale(self) -> int:
        """Factor the graph must bicubic-upscale by before the network runs."""
        return self.scale // self.model_scale

    def file_for(self, backend: str) -> ModelFile:
        get_backend(backend)
        if backend not in self.files:
            raise FfsrError(f"Model {self.name} has no {backend} file "
                            f"(it has: {', '.join(self.files)}).")
        return self.files[backend]

    def path_for(self, backend: str) -> Path:
        return (self.directory / self.file_for(backend).path).resolve()

    def save(self, directory: Path) -> Path:
        data = asdict(self)
        data.pop("directory")
        path = directory / f"{self.name}{CARD_SUFFIX}"
        path.write_text(json.dumps(data, indent=2, default=list) + "\n")
        return path


def load_card(path: Path) -> ModelCard:
    data = json.loads(path.read_text())
    files = {k: ModelFile(**{**v, "filters": tuple(v["filters"])}) for k, v in data["files"].items()}
    return ModelCard(name=data["name"], arch=data["arch"], scale=data["scale"],
                     model_scale=data["model_scale"], color=data["color"], files=files,
                     source=data["source"], licence=data["licence"], directory=path.parent)


def find_card(model: str, models_dir: Path | None = None) -> ModelCard:
    """A converted model by zoo name, by card path, or by model directory."""
    p = Path(model)
    if p.name.endswith(CARD_SUFFIX) and p.is_file():
        return load_card(p)
    if p.is_dir():
        cards = sorted(p.glob(f"*{CARD_SUFFIX}"))
        if cards:
            return load_card(cards[0])
    base = models_dir or converted_models_dir()
    card = base / model / f"{model}{CARD_SUFFIX}"
    if card.is_file():
        return load_card(card)
    raise FfsrError(f"Model '{model}' is not converted yet: run `ffsr convert-model {model}` "
                    f"(looked in {base}).")
