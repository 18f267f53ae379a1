"""Reports: the report's data (``reporting``), tables (``tables``, rendered by ``formatting``), runtime ratios
and precision speedups (``ratios``), the claims ``findings.md`` states (``findings``), screen plots (``plots``)
and print figures (``figures``) in one style (``plot_style``) with readable labels (``label_layout``),
``references.bib`` (``bibliography``), and writing them all (``report_files``)."""
