"""Filter-graph syntax: escaping user values and writing filter option lists.

FFmpeg parses a filter graph twice (see docs/ffmpeg-dnn.md, "escaping"): the graph
parser splits filters on ``, ; [ ]`` and then each filter's option parser splits
``key=value`` pairs on ``:``. A value therefore needs two rounds of backslash escaping,
option level first. Backslash-escaping is always allowed, so we also escape leading and
trailing spaces, which both parsers would otherwise strip.
"""

from __future__ import annotations

from collections.abc import Iterable

from ffsr.errors import FfsrError

OPTION_SPECIAL = frozenset("\\':=")
GRAPH_SPECIAL = frozenset("\\'[],;")


def _escape(text: str, special: frozenset[str]) -> str:
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch in special or (ch.isspace() and (i == 0 or i == last)) or ch in "\n\r\t":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def escape_value(value: object) -> str:
    """Escape one option value for use inside a filter graph string."""
    text = str(value)
    if "\x00" in text:
        raise FfsrError(f"A filter value cannot contain a NUL character: {text!r}")
    return _escape(_escape(text, OPTION_SPECIAL), GRAPH_SPECIAL)


def filter_options(pairs: Iterable[tuple[str, object]]) -> str:
    """``key=value:key=value`` with every value escaped; None values are skipped."""
    return ":".join(f"{k}={escape_value(v)}" for k, v in pairs if v is not None)


def unescape_token(text: str, terms: str) -> tuple[str, str]:
    """FFmpeg's av_get_token: read up to an unescaped char of ``terms``; returns (token, rest).

    A reference implementation for tests of the escaping (libavutil/avstring.c).
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n and text[i] in " \n\t\r":
        i += 1
    end = 0  # length of out that is protected from whitespace stripping
    while i < n and text[i] not in terms:
        ch = text[i]
        i += 1
        if ch == "\\" and i < n:
            out.append(text[i])
            i += 1
            end = len(out)
        elif ch == "'":
            while i < n and text[i] != "'":
                out.append(text[i])
                i += 1
            if i < n:
                i += 1
            end = len(out)
        else:
            out.append(ch)
    while len(out) > end and out[-1] in " \n\t\r":
        out.pop()
    return "".join(out), text[i:]
