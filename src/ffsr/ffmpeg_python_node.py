"""ffsr's model steps as a node in a user's own ffmpeg-python graph.

The node carries the very string `ffsr graph` renders and ffmpeg-python splices it between
the stream labels it assigns (``[0:v]<graph>[s0]``), so escaping happens once, in ffsr's
filterstring module. Rebuilding the chain filter by filter with ``.filter()`` would escape
values a second, different way (ffmpeg-python 0.2 escapes positional arguments twice and
never protects leading or trailing spaces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ffmpeg.nodes import FilterableStream, FilterNode

from ffsr.errors import FfsrError


class FfsrGraphNode(FilterNode):
    """A one-input, one-output filter node whose filter text is an ffsr graph, verbatim."""

    def __init__(self, stream: FilterableStream, graph: str) -> None:
        # The graph rides in kwargs so that two different graphs are two different nodes
        # (ffmpeg-python hashes name, args and kwargs) and `ffmpeg.view` shows it.
        super().__init__(stream, "ffsr", kwargs={"graph": graph})

    def _get_filter(self, outgoing_edges: Sequence[Any]) -> str:
        return str(self.kwargs["graph"])


def upscale_stream(stream: FilterableStream, model: str | Sequence[str],
                   **options: object) -> FilterableStream:
    """``stream`` with ffsr's model step(s) applied: the graph `ffsr graph` prints for the same
    model(s) and ``options`` (GraphOptions fields: backend, fps, width, alpha, ...).

    Run the result with ffsr's ffmpeg: ``.run(cmd=ffsr.ffmpeg_path())``.
    """
    if not isinstance(stream, FilterableStream):
        raise FfsrError("upscale_stream takes an ffmpeg-python stream, e.g. ffmpeg.input(path).video.")
    if options.get("in_label") or options.get("out_label"):
        raise FfsrError("ffmpeg-python names the graph's pads itself; leave in_label and "
                        "out_label unset.")
    from ffsr.api import graph

    node = FfsrGraphNode(stream, graph(model, **options))
    return node.stream()
