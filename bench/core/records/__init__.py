"""Records: every file the suite writes, typed and documented once (``schema``), results on disk and how they
are read back (``store``), and the machine and software a run used (``environment``)."""
