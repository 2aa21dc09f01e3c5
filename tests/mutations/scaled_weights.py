"""Mutation check M1 (issue 15), as a pytest plugin: one layer's weights x0.9 in the converted
small-grayrealesrx2.onnx, with the card's sha256 updated to match, i.e. a converter that
wrote wrong weights rather than a damaged file (that one ffsr refuses by its sha256).

    PYTHONPATH=tests/mutations pytest -p scaled_weights \\
        tests/test_zoo_pixels.py::test_gray_realesrgan_through_upscale_equals_pytorch

must FAIL (measured: 30.7 % of pixels within one level, 34.0 dB). Not collected by the suite.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import onnx
import pytest
from onnx import numpy_helper

MODEL = "small-grayrealesrx2"
_done: list[bool] = []


@pytest.fixture(autouse=True)
def _scaled_weights(request: pytest.FixtureRequest) -> Iterator[None]:
    if "zoo_models" in request.fixturenames and not _done:
        card = request.getfixturevalue("zoo_models")[MODEL]
        path = card.path_for("onnx")
        model = onnx.load(str(path))
        init = next(i for i in model.graph.initializer if len(i.dims) == 4)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.9, init.name))
        onnx.save(model, str(path))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files = {k: dataclasses.replace(v, sha256=digest) if card.path_for(k) == path else v
                 for k, v in card.files.items()}
        dataclasses.replace(card, files=files).save(card.directory)
        _done.append(True)
        print(f"mutation: {init.name} x0.9 in {path}, card sha256 updated")
    yield
