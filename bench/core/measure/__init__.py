"""Measuring: a sitting of interleaved rounds over every runtime's cells (``sitting``), the worker process that
hosts one runtime (``worker``), one cell's protocol (``engine``) and its timed loops (``timing``), the machine's
speed and validity (``machine``, ``system``), how far this machine's sittings differ (``sitting_history``), the
headline and its interval (``stats``), ``compare``'s verdicts (``verdicts``), parity against eager PyTorch
(``parity``), peak memory (``memory``), FLOP counts (``counting``), and the named pause points tests hold a
command at (``pause``)."""
