"""Segmented upscaling: one long job cut at keyframes into segments that run (and resume)
independently, then joined into the same file the single-process `ffsr upscale` writes.

This room owns the segment *plan* (frame table, cuts: ``frames``), the *manifest* that
makes resume safe (``manifest``), the per-segment *worker* command and its done record
(``worker``), *executors* that run workers (``executor``: local processes) and the *join*
(``join``, fed as one stream by ``matroska`` while workers still run); ``job`` ties them
together. Graphs that look across frames get their cut widened in ``temporal`` (RIFE:
context frames, kept output slots) and ``dedupe`` (mpdecimate decided once for the whole
clip), or their whole-clip part run once first in ``prepass`` (minterpolate). The
single-process path (``ffsr.upscale_job``) stays as simple as it was: this package only
reads its plan (graph, encoder arguments).
A new executor (Ray, a cluster scheduler) goes next to ``executor``.
"""
