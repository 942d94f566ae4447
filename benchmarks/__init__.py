"""Benchmarks: scripts that measure statelab on this machine (``python benchmarks/bench.py``), not part of the package.

A package only so the tests can reuse their measurements (``from benchmarks import bench``).
"""
