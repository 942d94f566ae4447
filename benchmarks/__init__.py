"""Benchmarks: scripts that measure statelab on this machine (``python benchmarks/bench.py``), not part of the package.

A package only because tests/production/test_hub.py drives a real JupyterHub with ``class_on_a_hub``'s machinery
(the wrk comparison the load-generator test needs lives in :mod:`statelab.load`).
"""
