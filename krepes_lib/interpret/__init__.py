"""Interpretability: representer landmarks, influence scores, concepts and their evaluation.

Book: *Interpretability* (``book/interpretability.md``), equations (int-representer) ...
(int-entropy); spec §6 (definitions) and §7 (the paper's numbers).

The package has one module per concept: :mod:`.influence` (representer
decomposition, influence, concepts), :mod:`.tabular` (feature alignment),
:mod:`.metrics` (Precision@1, confidence drop, Kendall-τ, spectral entropy, κ),
:mod:`.diagnostics` (how concentrated the top-1 influence is), :mod:`.export` (tables, image
grids). The
:class:`krepes_lib.audit.Audit` object calls them with the kernel blocks it caches
(``K_tm=`` / ``K_mm=``), so no metric recomputes a block another one built.

Every function takes a **generic coefficient matrix** ``A`` of shape (m, h): the one-step
GGN-Newton increment ΔÃ when auditing a frozen network (v3), or the trained Ã itself (v1).
The representation the influence explains is f(x) = Ãᵀk_x + γ with k_x = [k(x̃_l, x)]_l.

Streaming
---------
Nothing of size n_test × m (let alone n_test × m × h) is ever held for all test points:
every function walks over **blocks of test rows** whose size is chosen so that the kernel
block K_bm and the per-block work arrays fit ``memory_budget`` bytes
(default :data:`krepes_lib.defaults.BLOCK_BYTES`). Per-landmark quantities (‖A_l,:‖₂, A v,
the landmark representations) are O(m h) and computed once. The dense convenience
functions (:func:`contributions`, :func:`influence_scores`, ...) concatenate the blocks and
refuse (ValueError) an output larger than ``max_bytes``; use the ``*_blocks`` iterators for
large test sets. Results do not depend on the block size (tested).

Backends
--------
"Everything follows X": arrays are computed in the namespace of the inputs
(:func:`krepes_lib.backend.get_xp`, NumPy or CuPy, mixing is an error). scikit-learn
(concept activation vectors) and SciPy (Kendall-τ) run on the host on explicit
:func:`~krepes_lib.backend.to_host` copies. Random landmark sets (the baselines of the
alignment gap and the confidence drop) and bootstrap resamples are drawn on the host from
seeded generators, in fixed chunks of test rows, so a seed gives the same draws on a CPU
and a GPU and for any ``memory_budget``.

Defaults of spec §6 that are the paper's: top-10 removal and k = 50 for the confidence
drop. Defaults that are ours: K = 5 for the top-K lists, K = 10 for the alignment gap,
1000 bootstrap resamples, a 95% percentile interval, cosine similarity for the k-NN and
the Precision@1 baseline, and C = 1 for the concept logistic regression. The confidence
drop targets the test point's true class (spec §6); the k-NN's predicted class is an option.
"""
from __future__ import annotations

from ..defaults import (AG_TOP_K, CAV_C, CI_LEVEL, DENSE_MAX_BYTES, DROP_KNN_K, DROP_N_REMOVE,
                        N_BOOT, TOP_K)
from .diagnostics import InfluenceConcentrationWarning, influence_concentration
from .export import gallery_grid, influence_grid, signed_contributions, topk_table
from .influence import (AttractRepel, TopK, concept_activation_vector, concept_influence,
                        contribution_blocks, contributions, influence_blocks, influence_scores,
                        landmark_norms, representer_sum, top_attracting_repelling, top_influential)
from .metrics import (ConfidenceDrop, PrecisionAt1, class_coverage_from_coefficients,
                      confidence_drop, kendall_tau, precision_at_1, spectral_entropy)
from .tabular import AlignmentGap, alignment_gap, feature_agreement, feature_conditioned_influence

__all__ = [
    "contribution_blocks", "contributions", "representer_sum",
    "landmark_norms", "influence_blocks", "influence_scores", "top_influential",
    "concept_activation_vector", "concept_influence", "top_attracting_repelling",
    "feature_agreement", "feature_conditioned_influence", "alignment_gap",
    "precision_at_1", "confidence_drop", "kendall_tau", "spectral_entropy",
    "class_coverage_from_coefficients",
    "influence_concentration", "InfluenceConcentrationWarning", "topk_table", "signed_contributions",
    "influence_grid", "gallery_grid",
    "TopK", "AttractRepel", "AlignmentGap", "PrecisionAt1", "ConfidenceDrop",
    "TOP_K", "AG_TOP_K", "N_BOOT", "CI_LEVEL", "DROP_N_REMOVE", "DROP_KNN_K", "CAV_C",
    "DENSE_MAX_BYTES",
]
