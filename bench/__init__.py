"""Latency, throughput and FLOPs benchmarking of mobile vision backbones across runtimes.

``bench.core`` is the library, ``bench.backends`` the runtimes (one module each), ``bench.commands``
the sub-commands of ``python -m bench``.
"""

__version__ = "0.1.0"
