"""The finished segments as ONE live Matroska stream: the header of the first segment, then
every segment's clusters, in order.

The join reads this stream from a FIFO while the workers still run, so the final encode
overlaps the model instead of following it (ffsr's lean FFmpeg has no concat demuxer, and
ffmpeg opens every `-i` before it decodes anything). The segments are written by the same
ffmpeg with the same intermediate codec settings and keep the original's absolute timestamps (-copyts,
millisecond clusters), so their clusters can follow one another unchanged; the tracks of
each segment are checked to equal the first's (codec private data, size, format) before its
clusters are sent.

Only top-level structure is parsed (EBML element IDs and sizes); blocks are copied byte
for byte. The stream has an unknown-size Segment, no SeekHead, Cues or Duration: what
ffmpeg itself writes to a pipe.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ffsr.errors import FfsrError

EBML, SEGMENT, INFO, TRACKS, CLUSTER = 0x1A45DFA3, 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
DURATION, CRC32, TRACK_ENTRY, TRACK_UID = 0x4489, 0xBF, 0xAE, 0x73C5
CLUSTER_TIMESTAMP, SIMPLE_BLOCK, BLOCK_GROUP, BLOCK = 0xE7, 0xA3, 0xA0, 0xA1
LACING = 0x06
"""A block's flag bits that say it holds several frames (ffmpeg never laces video)."""
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Element:
    id: int
    header: bytes
    """The ID and size bytes as written."""
    size: int | None
    """Payload bytes; None: unknown (live streams)."""


def _vint(f: BinaryIO, keep_marker: bool) -> tuple[int, bytes] | None:
    first = f.read(1)
    if not first:
        return None
    length = 9 - first[0].bit_length()
    if not 1 <= length <= 8:
        raise FfsrError("Internal: a segment file is not Matroska (bad element header).")
    raw = first + f.read(length - 1)
    if len(raw) != length:
        raise FfsrError("Internal: a segment file ends inside an element header.")
    value = int.from_bytes(raw, "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, raw


def read_element(f: BinaryIO) -> Element | None:
    """The next element header at ``f``'s position; None at the end of the file."""
    ident = _vint(f, keep_marker=True)
    if ident is None:
        return None
    size = _vint(f, keep_marker=False)
    if size is None:
        raise FfsrError("Internal: a segment file ends inside an element header.")
    unknown = size[0] == (1 << (7 * len(size[1]))) - 1
    return Element(ident[0], ident[1] + size[1], None if unknown else size[0])


def children(payload: bytes) -> Iterator[tuple[Element, bytes]]:
    """(header, payload) of each child of a master element held in memory."""
    from io import BytesIO

    f = BytesIO(payload)
    while (el := read_element(f)) is not None:
        if el.size is None:
            raise FfsrError("Internal: an unknown-size element inside a header element.")
        yield el, f.read(el.size)


def _element(ident: int, payload: bytes) -> bytes:
    """An element with ID ``ident`` and an 8-byte size for ``payload``."""
    return (ident.to_bytes((ident.bit_length() + 7) // 8, "big")
            + (0x01 << 56 | len(payload)).to_bytes(8, "big") + payload)


def _without(payload: bytes, drop: set[int]) -> bytes:
    return b"".join(el.header + body for el, body in children(payload) if el.id not in drop)


def tracks_signature(tracks: bytes) -> bytes:
    """The Tracks payload without what ffmpeg randomises (track UIDs, CRCs)."""
    return b"".join(_without(body, {TRACK_UID, CRC32}) if el.id == TRACK_ENTRY else b""
                    for el, body in children(tracks))


@dataclass(frozen=True)
class SegmentFile:
    """What the stream needs of one segment file."""

    ebml: bytes
    """The EBML header element, as written."""
    info: bytes
    tracks: bytes
    clusters: list[tuple[int, int]]
    """(offset, length) of each Cluster element, header included."""


def scan(path: Path) -> SegmentFile:
    """Read a segment file's top level: headers kept, clusters located."""
    ebml = info = tracks = b""
    clusters: list[tuple[int, int]] = []
    with open(path, "rb") as f:
        el = read_element(f)
        if el is None or el.id != EBML or el.size is None:
            raise FfsrError(f"{path.name} is not a Matroska file.")
        ebml = el.header + f.read(el.size)
        seg = read_element(f)
        if seg is None or seg.id != SEGMENT:
            raise FfsrError(f"{path.name} has no Matroska segment.")
        while True:
            at = f.tell()
            el = read_element(f)
            if el is None:
                break
            if el.size is None:
                raise FfsrError(f"{path.name} has an unknown-size element (a live stream?).")
            if el.id == CLUSTER:
                clusters.append((at, len(el.header) + el.size))
                f.seek(el.size, 1)
            elif el.id in (INFO, TRACKS):
                body = f.read(el.size)
                if el.id == INFO:
                    info = body
                else:
                    tracks = body
            else:
                f.seek(el.size, 1)
    if not info or not tracks:
        raise FfsrError(f"{path.name} has no Matroska Info or Tracks.")
    return SegmentFile(ebml, info, tracks, clusters)


def stream_header(first: SegmentFile) -> bytes:
    """EBML header, an unknown-size Segment, Info without Duration (the stream's length is
    not the first segment's) and the first segment's Tracks."""
    info = _without(first.info, {DURATION, CRC32})
    return (first.ebml + SEGMENT.to_bytes(4, "big") + UNKNOWN_SIZE
            + _element(INFO, info) + _element(TRACKS, first.tracks))


def write_clusters(path: Path, seg: SegmentFile, out: BinaryIO) -> None:
    """Copy the clusters in the kernel (sendfile: no pass through this process's memory)."""
    out.flush()
    with open(path, "rb") as f:
        for offset, length in seg.clusters:
            while length > 0:
                sent = os.sendfile(out.fileno(), f.fileno(), offset, min(CHUNK, length))
                if not sent:
                    raise FfsrError(f"{path.name} ended early (changed while it was joined?).")
                offset, length = offset + sent, length - sent


def frame_times(path: Path) -> list[int]:
    """Every frame's timestamp (the file's units: milliseconds as ffmpeg writes Matroska), in
    file order, from the block headers alone: an intra-only file has one block per frame,
    so this counts frames without decoding, or even reading, them."""
    seg = scan(path)
    times: list[int] = []
    with open(path, "rb") as f:
        for offset, length in seg.clusters:
            f.seek(offset)
            cluster = read_element(f)
            assert cluster is not None
            base, end = None, offset + length
            while f.tell() < end:
                el = read_element(f)
                if el is None or el.size is None:
                    raise FfsrError(f"{path.name} has a damaged cluster.")
                if el.id == CLUSTER_TIMESTAMP:
                    base = int.from_bytes(f.read(el.size), "big")
                elif el.id in (SIMPLE_BLOCK, BLOCK_GROUP):
                    times.append(_block_time(f, el, base, path))
                else:
                    f.seek(el.size, 1)
    return times


def _block_time(f: BinaryIO, el: Element, base: int | None, path: Path) -> int:
    """The absolute timestamp of the block at ``f`` (a SimpleBlock, or a BlockGroup's Block);
    ``f`` ends after the element."""
    end = f.tell() + (el.size or 0)
    if el.id == BLOCK_GROUP:
        while (inner := read_element(f)) is not None and inner.id != BLOCK and f.tell() < end:
            f.seek(inner.size or 0, 1)
        if inner is None or inner.id != BLOCK:
            raise FfsrError(f"{path.name} has a block group without a block.")
    if _vint(f, keep_marker=False) is None:  # the track number
        raise FfsrError(f"{path.name} ends inside a block.")
    head = f.read(3)
    if base is None or len(head) != 3 or head[2] & LACING:
        raise FfsrError(f"{path.name} has a block without a cluster timestamp, or laced frames.")
    f.seek(end)
    return base + int.from_bytes(head[:2], "big", signed=True)
