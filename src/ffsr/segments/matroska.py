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
VOID, MAX_BLOCK_ADDITION_ID = 0xEC, 0x55EE
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
    """The Tracks payload without what ffmpeg randomises (track UIDs, CRCs) and what it
    writes to a seekable file only (MaxBlockAdditionID 0 and Void space kept for block
    addition mappings): a worker's segment file and one cut from a stream
    (segments.checkpoint) hold the same track."""
    drop = {TRACK_UID, CRC32, VOID, MAX_BLOCK_ADDITION_ID}
    return b"".join(_without(body, drop) if el.id == TRACK_ENTRY else b""
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
    number = _vint(f, keep_marker=False)  # the track number
    if number is None:
        raise FfsrError(f"{path.name} ends inside a block.")
    time = _block_time_in(number[1] + f.read(3), base, path.name)
    f.seek(end)
    return time


def _block_time_in(block: bytes, base: int | None, name: str) -> int:
    """The absolute timestamp of a Block or SimpleBlock from its payload's start (track
    number, 16-bit relative time, flags)."""
    if not block:
        raise FfsrError(f"{name} ends inside a block.")
    at = 9 - block[0].bit_length()  # the track number's length
    head = block[at:at + 3]
    if base is None or not 1 <= at <= 8 or len(head) != 3 or head[2] & LACING:
        raise FfsrError(f"{name} has a block without a cluster timestamp, or laced frames.")
    return base + int.from_bytes(head[:2], "big", signed=True)


@dataclass(frozen=True)
class LiveCluster:
    """One cluster of a live stream: its bytes as read, and where its blocks are, to cut it."""

    raw: bytearray
    timestamp: bytes
    """Its Timestamp element: what a part of it needs to be a cluster of its own."""
    blocks: list[tuple[int, int, int]]
    """(absolute time, start, end) of each block element in ``raw``, in stream order."""

    def part(self, start: int, end: int) -> bytes | bytearray:
        """Blocks [start, end) as a cluster (the one read where that is all of them; a part
        drops the cluster's CRC-32, which covered all)."""
        if start == 0 and end == len(self.blocks):
            return self.raw
        view = memoryview(self.raw)
        return _element(CLUSTER, self.timestamp + b"".join(
            view[a:b] for _, a, b in self.blocks[start:end]))


def _exactly(f: BinaryIO, size: int, name: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise FfsrError(f"{name} ended inside an element (its writer stopped?).")
    return data


def _vint_at(buf: bytearray, at: int, name: str, keep_marker: bool = False) -> tuple[int, int]:
    """(value, length) of the EBML number at ``buf[at]``."""
    length = 9 - buf[at].bit_length() if at < len(buf) else 0
    if not 1 <= length <= 8 or at + length > len(buf):
        raise FfsrError(f"{name} has a damaged cluster.")
    value = int.from_bytes(buf[at:at + length], "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), length


def _spans(buf: bytearray, start: int, end: int, name: str) -> Iterator[tuple[int, int, int, int]]:
    """(ID, element start, payload start, element end) of each element in buf[start:end],
    read in place (a cluster is a frame's worth of bytes: no copies)."""
    at = start
    while at < end:
        ident, n = _vint_at(buf, at, name, keep_marker=True)
        size, m = _vint_at(buf, at + n, name)
        body = at + n + m
        if body + size > end:
            raise FfsrError(f"{name} has a damaged cluster.")
        yield ident, at, body, body + size
        at = body + size


def _live_cluster(header: bytes, f: BinaryIO, size: int, name: str) -> LiveCluster:
    raw = bytearray(len(header) + size)
    raw[:len(header)] = header
    if f.readinto(memoryview(raw)[len(header):]) != size:  # type: ignore[attr-defined]
        raise FfsrError(f"{name} ended inside an element (its writer stopped?).")
    base, timestamp, blocks = None, b"", []
    for ident, at, body, end in _spans(raw, len(header), len(raw), name):
        if ident == CLUSTER_TIMESTAMP:
            base, timestamp = int.from_bytes(raw[body:end], "big"), bytes(raw[at:end])
        elif ident == SIMPLE_BLOCK:
            blocks.append((_block_time_in(bytes(raw[body:body + 12]), base, name), at, end))
        elif ident == BLOCK_GROUP:
            inner = next((b for i, _, b, _ in _spans(raw, body, end, name) if i == BLOCK), None)
            if inner is None:
                raise FfsrError(f"{name} has a block group without a block.")
            blocks.append((_block_time_in(bytes(raw[inner:inner + 12]), base, name), at, end))
    return LiveCluster(raw, timestamp, blocks)


def read_live(f: BinaryIO, name: str) -> tuple[bytes, Iterator[LiveCluster]]:
    """ffmpeg's Matroska as written to a pipe: the header a file of some of its clusters
    needs (stream_header), then its clusters as they arrive (``f`` blocks for them)."""
    el = read_element(f)
    if el is None or el.id != EBML or el.size is None:
        raise FfsrError(f"{name} is not a Matroska stream.")
    ebml = el.header + _exactly(f, el.size, name)
    seg = read_element(f)
    if seg is None or seg.id != SEGMENT:
        raise FfsrError(f"{name} has no Matroska segment.")
    info = tracks = b""
    while (el := read_element(f)) is not None and el.id != CLUSTER:
        if el.size is None:
            raise FfsrError(f"{name} has an unknown-size element before its first cluster.")
        body = _exactly(f, el.size, name)
        info, tracks = (body, tracks) if el.id == INFO else \
            (info, body) if el.id == TRACKS else (info, tracks)
    if not info or not tracks:
        raise FfsrError(f"{name} has no Matroska Info or Tracks.")
    first = el

    def clusters() -> Iterator[LiveCluster]:
        el = first
        while el is not None:
            if el.size is None:
                raise FfsrError(f"{name} has an unknown-size element (a live-mode cluster?).")
            if el.id == CLUSTER:
                yield _live_cluster(el.header, f, el.size, name)
            else:
                _exactly(f, el.size, name)
            el = read_element(f)

    return stream_header(SegmentFile(ebml, info, tracks, [])), clusters()
