"""Records: every file the suite writes, typed and documented once (``schema``), results on disk and how they
are read back (``store``), the typed cell every reader of results takes (``cell``: its key and named
estimators), and the machine and software a run used (``environment``)."""
