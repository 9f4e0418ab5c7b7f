"""Tiny randomly initialised models in RVC's file formats.

Tests, benchmarks and the reserved ``tiny-random`` model name use these so
that every code path runs without downloading real weights.  Each submodule
writes files in exactly the format the real loader reads.
"""
