"""``bench complexity``: put the CAS-ViT complexity claim for its token mixer to a measured test.

The published summary of CAS-ViT gives the cost of the Convolutional Additive Token Mixer (CATM) as
Ω(CATM) = (47 + 10b)·H·W·C with b "the batch size". The paper's own text is not available, so this
command does not assume what the formula means. It

1. evaluates the stated formula, or any other ``--model`` expression over (b, H, W, C, N=H·W), on a grid;
2. measures the project's own :class:`models.casvit.AdditiveTokenMixer` (and, to see where "47" comes
   from, the whole :class:`models.casvit.AdditiveBlock`) with fvcore, FlopCounterMode and thop's rules,
   split into operator terms, plus the elementwise ops and sigmoids no counter prices (counted
   analytically for the CATM, and cross-checked against a dispatch-level tally);
3. fits every measurement on the basis {b·HWC², b·HWC, b·C², HWC} by least squares;
4. turns the fits into a verdict table: how cost grows with b, which terms the formula lacks, and
   which readings of b make it exact;
5. checks the central claim (cost linear in tokens, where self-attention is quadratic) on counts and on
   measured latency (torch CPU and ONNX Runtime) of the mixers, whole CAS-ViT models and baselines;
6. writes CSV, a markdown summary and PNG+SVG plots to ``--out``.

Counts are in multiply-accumulates (MACs) for the counters; the uncounted elementwise work is in
single operations (one per output element), and tables that add the two say so.
"""

from __future__ import annotations

from bench.commands.complexity.command import DEFAULT_LATENCY_MODELS, add_arguments, main
from bench.commands.complexity.counting import (
    COUNTED_TERMS,
    MIXERS,
    TERM_SCALING,
    UNCOUNTED_TERMS,
    Grid,
    ReferenceMSA,
    UncountedTally,
    catm_uncounted,
    classify_module,
    exponent_table,
    fvcore_pass,
    fvcore_terms,
    measure_grid,
    meta_pass,
    module_width,
    single_threaded,
    slope,
    token_costs,
    upper_half,
)
from bench.commands.complexity.fits import (
    BASIS,
    STATED_MODEL,
    SYMBOLS,
    TARGET_LABELS,
    CostModel,
    Counts,
    Fit,
    batch_linearity,
    design_matrix,
    fit_basis,
    fit_table,
    model_comparison,
    parse_cost_model,
    phi_branch_cost,
    plain_verdict,
    run_counts,
    term_table,
    verdict_table,
)
from bench.commands.complexity.latency import (
    Latency,
    LatencySettings,
    latency_words,
    mixer_latency,
    model_latency,
    run_latency,
)
from bench.commands.complexity.report import (
    plot_cost_vs_tokens,
    plot_latency_vs_tokens,
    plot_measured_vs_predicted,
    plot_operator_terms,
    save,
)

__all__ = [
    "BASIS",
    "COUNTED_TERMS",
    "DEFAULT_LATENCY_MODELS",
    "MIXERS",
    "STATED_MODEL",
    "SYMBOLS",
    "TARGET_LABELS",
    "TERM_SCALING",
    "UNCOUNTED_TERMS",
    "CostModel",
    "Counts",
    "Fit",
    "Grid",
    "Latency",
    "LatencySettings",
    "ReferenceMSA",
    "UncountedTally",
    "add_arguments",
    "batch_linearity",
    "catm_uncounted",
    "classify_module",
    "design_matrix",
    "exponent_table",
    "fit_basis",
    "fit_table",
    "fvcore_pass",
    "fvcore_terms",
    "latency_words",
    "main",
    "measure_grid",
    "meta_pass",
    "mixer_latency",
    "model_comparison",
    "model_latency",
    "module_width",
    "parse_cost_model",
    "phi_branch_cost",
    "plain_verdict",
    "plot_cost_vs_tokens",
    "plot_latency_vs_tokens",
    "plot_measured_vs_predicted",
    "plot_operator_terms",
    "run_counts",
    "run_latency",
    "save",
    "single_threaded",
    "slope",
    "term_table",
    "token_costs",
    "upper_half",
    "verdict_table",
]
