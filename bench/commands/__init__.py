"""One module (or package) per ``python -m bench`` sub-command, named like it: thin layers that parse
arguments and call :mod:`bench.core`, :mod:`bench.backends` and :mod:`models`, never each other.
"""
