"""Benchmarks: scripts that measure statelab on this machine (``python benchmarks/bench.py``), not part of the package.

No test imports them (``tests/unit/test_import_rules.py``): what a benchmark shares with a test lives in the package
(the wrk comparison in :mod:`statelab.load`) or beside the classroom config (the hub class in
``classroom/rehearsal.py``).
"""
