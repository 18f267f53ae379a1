"""The shared library every command builds on: the runtime interface backends implement
(:mod:`~bench.core.runtime`), the settings of a run and their one builder from arguments
(:mod:`~bench.core.settings`), the one way to open a checked session (:mod:`~bench.core.sessions`),
the export cache, result schema and store, measuring (engine, timing, machine-speed reference,
validity), statistics, parity, environment and system checks, FLOP counting, reports (data, tables,
plots, label layout) and small utilities. Nothing here names a specific runtime backend or imports
``bench.backends`` / ``bench.commands`` (``tests/test_architecture.py`` checks it).
"""
