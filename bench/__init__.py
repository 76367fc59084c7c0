"""Benchmarks of zmtp side by side with pyzmq (libzmq), run as ``python -m bench``.

See :mod:`bench.__main__` for the command line, :mod:`bench._scenarios` for what is
measured and how, and ``bench/RESULTS.md`` for the latest figures.
"""
