"""The shared library every command builds on, one room per concern (each subpackage's docstring lists its
modules): ``interface`` (what a backend implements, what a run measures, opening a checked session, the export
cache), ``measure`` (sittings, workers, one cell's protocol, the machine's speed, statistics, verdicts, parity,
FLOPs), ``records`` (the schema of every file and the results store), ``report`` (tables, ratios, findings,
plots and print figures), ``scoring`` (top-1 on image folders) and ``importers`` (vendor tools' outputs for
``bench import``); beside them ``arguments`` (the flags several commands share), ``errors`` and ``util``.
Nothing here names a specific runtime backend or imports ``bench.backends`` / ``bench.commands``
(``tests/test_architecture.py`` checks it).
"""
