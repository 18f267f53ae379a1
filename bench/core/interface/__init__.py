"""The runtime interface: what every backend implements (``runtime``: workload, session, options, registry),
what a run measures (``settings``), the one way to open a checked session (``sessions``), the checksummed
export cache (``artifacts``) and the skeleton of a runtime that times a converted file (``artifact_backend``),
and the calibration set of quantized networks (``calibration``)."""
