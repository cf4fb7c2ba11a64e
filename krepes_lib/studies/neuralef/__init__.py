"""NeuralEF: the top-k eigenfunctions of a kernel learned by k neural networks (seed 002).

Book: *NeuralEF vs Nyström* (``book/neuralef.md``), equations (nef-eig), (nef-nys-oos),
(nef-R), (nef-l2bn), (nef-loss), (nef-grad), (nef-mu), (nef-rf), (nef-erf), (nef-bridge);
they follow Deng, Shi & Zhu, *NeuralEF: Deconstructing Kernels by Deep Neural Networks*,
ICML 2022 (seed 002), eqs. (8), (14)-(20).

For a kernel κ and data distribution q the eigenfunctions solve ∫κ(x, x')ψ_j(x')q(x')dx' =
μ_j ψ_j(x) with ⟨ψ_i, ψ_j⟩_q = δ_ij (nef-eig). NeuralEF represents ψ̂_j by a network with its
own weights w_j (here k networks evaluated in parallel: :class:`ParallelMLP`,
:class:`ParallelCNN`), followed by the L2 batch normalisation (nef-l2bn, seed eq. 16)

    ψ̂_j(x_b) = h_j(x_b) / σ_j,   σ_j = sqrt((1/B) Σ_b h_j(x_b)²)   (EMA of σ_j at test time),

and minimises on a batch X (B points, kernel block K = κ(X, X)) the loss (nef-loss, seed eq. 17)

    ℓ = −(1/B²) Σ_j [ ψ̂_jᵀ K ψ̂_j − Σ_{i<j} (sg(ψ̂_i)ᵀ K ψ̂_j)² / (sg(ψ̂_i)ᵀ K sg(ψ̂_i)) ].

The stop-gradient acts on ψ̂_i (i < j) — this is what the seed's gradient (18) differentiates
(an sg over the whole R̃_ij, as eq. (17) is typeset, would make the penalty constant). The
gradient is formed by hand, eq. (nef-grad) = seed eq. (18),

    ∂ℓ/∂ψ̂_j = −(2/B²) K (ψ̂_j − Σ_{i<j} (R̃_ij / R̃_ii) ψ̂_i),   R̃_ij = ψ̂_iᵀ K ψ̂_j / B²  (nef-R)

and pushed through the networks by one vector-Jacobian product (``Psi.backward(G)``). The
eigenvalue estimate is the EMA of R̃_jj (nef-mu, seed Alg. 1 line 7). Kernel targets: any
:class:`krepes_lib.kernels.Kernel` (RBF, Polynomial, ArcCosineNNGP, ReluNTK, :class:`ErfNNGP`,
…) evaluated on each batch (seed footnote 3: no n×n matrix), or a :class:`RandomFeatureKernel`
κ(x, x') ≈ (1/S) Σ_s φ_s(x) φ_s(x') (nef-rf, seed eqs. 19-20): Monte-Carlo NN-GP features
(:func:`cnn_gp_features`) or eNTK random features J(x)v_s (:func:`entk_features`), whose
features are computed once for the training set.

The bridge to KREPES, eq. (nef-bridge): φ(x) = [sqrt(μ̂_j) ψ̂_j(x)]_j is the learned Mercer
feature map, the analogue of the PC-initialised model f₀(x) = Λ_h^{-1/2} U_hᵀ k_x (eq.
(nys-pc)). :func:`neuralef_pc_model` builds a :class:`krepes_lib.model.NystromModel` with the
linear kernel on φ (its PC init is the NeuralEF eigenbasis); :class:`CollapsedModel` folds a
trained/audited model f(x) = Ãᵀ Φ_m φ(x) + γ into Bᵀ φ(x) + γ with B = Φ_mᵀ Ã (k × h), so a
test point costs k network passes and k·h flops, not m kernel evaluations.

The study is split by concern: :mod:`.networks` (the k eigenfunction networks, L2 batch
normalisation, the CNN classifier), :mod:`.kernels` (kernel targets: random features, erf NNGP,
CNN-GP, eNTK features from :class:`krepes_lib.neural.TorchNTK`), :mod:`.objective` (loss,
hand gradient, :class:`NeuralEF`), :mod:`.bridge` (the Nyström reference and the bridge to
KREPES) and :mod:`.experiments` (the steps notebook 10 calls). Times are measured by the one
timer, :mod:`krepes_lib.timing`.
"""
from __future__ import annotations

from .bridge import CollapsedModel, neuralef_pc_model, nystrom_eigenfunctions
from .experiments import (RESOLUTION, abs_cosine, bridge_run, classic_kernel_run, cluster_accuracy,
                          eigenvalue_error, ntk_experiment, projection_run, subspace_overlap, timing_vs_n)
from .kernels import (ErfNNGP, RandomFeatureKernel, cnn_gp_features, entk_features, exact_entk_features,
                      mlp_gp_kernel)
from .networks import L2BatchNorm, ParallelCNN, ParallelMLP, SharedMLP, SmallCNN, train_classifier
from .objective import NeuralEF, NeuralEFHistory, batches, eigenvalue_estimate, neuralef_grad, neuralef_objective

__all__ = [
    "L2BatchNorm", "ParallelMLP", "ParallelCNN", "neuralef_objective", "neuralef_grad",
    "NeuralEF", "NeuralEFHistory", "RandomFeatureKernel", "ErfNNGP", "cnn_gp_features", "entk_features",
    "exact_entk_features", "nystrom_eigenfunctions", "neuralef_pc_model", "CollapsedModel",
    "SmallCNN", "train_classifier", "SharedMLP", "abs_cosine", "mlp_gp_kernel",
    "classic_kernel_run", "timing_vs_n", "ntk_experiment", "bridge_run", "cluster_accuracy",
    "subspace_overlap", "projection_run", "eigenvalue_error", "RESOLUTION", "batches", "eigenvalue_estimate",
]
