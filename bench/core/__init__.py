"""The shared library every command builds on: result schema and store, measuring (engine, timing,
machine-speed reference, validity), statistics, parity, environment and system checks, FLOP counting,
reports (data, tables, plots, label layout) and small utilities. Nothing here parses a command line
or names a specific runtime backend.
"""
