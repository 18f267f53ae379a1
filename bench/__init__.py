"""Latency, throughput and FLOPs benchmarking of mobile vision backbones across runtimes."""

__version__ = "0.1.0"
