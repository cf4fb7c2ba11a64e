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
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..backend import to_host
from ..kernels import Kernel, Linear, _sqnorms

__all__ = [
    "L2BatchNorm", "ParallelMLP", "ParallelCNN", "neuralef_objective", "neuralef_grad",
    "NeuralEF", "RandomFeatureKernel", "ErfNNGP", "cnn_gp_features", "entk_features",
    "exact_entk_features", "nystrom_eigenfunctions", "neuralef_pc_model", "CollapsedModel",
    "SmallCNN", "train_classifier", "SharedMLP", "abs_cosine", "mlp_gp_kernel",
    "classic_kernel_run", "timing_vs_n", "ntk_experiment", "bridge_run", "cluster_accuracy",
    "seconds_per_point", "subspace_overlap",
]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _tdtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = np.dtype(dtype or "float32").name
    if name not in _TORCH_DTYPES:
        raise ValueError(f"dtype={dtype!r} must be 'float32' or 'float64'.")
    return _TORCH_DTYPES[name]


# ----------------------------------------------------------------------------------------
# Networks: k independent eigenfunction networks evaluated in parallel
# ----------------------------------------------------------------------------------------
class L2BatchNorm(nn.Module):
    """L2 batch normalisation, eq. (nef-l2bn) = seed eq. (16): h_j / σ_j per output j.

    Training: σ_j = sqrt(mean_b h_j(x_b)²) of the batch, and an EMA of σ_j is recorded
    (``running_sigma``, decay ``ema``); evaluation divides by the EMA. The first batch
    initialises the EMA.
    """

    def __init__(self, k: int, ema: float = 0.99, eps: float = 1e-12):
        super().__init__()
        if not 0 <= ema < 1:
            raise ValueError(f"ema={ema} must be in [0, 1) (the EMA decay of σ).")
        self.ema, self.eps = float(ema), float(eps)
        self.register_buffer("running_sigma", torch.ones(k))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, H):
        if self.training:
            sigma = torch.sqrt((H * H).mean(0) + self.eps)
            with torch.no_grad():
                s = sigma.detach().to(self.running_sigma.dtype)
                if bool(self.initialised):
                    self.running_sigma.mul_(self.ema).add_((1.0 - self.ema) * s)
                else:
                    self.running_sigma.copy_(s)
                    self.initialised.fill_(True)
            return H / sigma
        return H / self.running_sigma.to(H.dtype)


class _SinCos(nn.Module):
    """Half the units sin, half cos (seed App. B, classic kernels)."""

    def forward(self, H):
        w = H.shape[-1] // 2
        return torch.cat([torch.sin(H[..., :w]), torch.cos(H[..., w:])], dim=-1)


def _activation(name):
    acts = {"sincos": _SinCos(), "relu": nn.ReLU(), "tanh": nn.Tanh(), "erf": None}
    if name not in acts or acts[name] is None:
        raise ValueError(f"activation={name!r} is unknown; choose 'sincos', 'relu' or 'tanh'.")
    return acts[name]


class ParallelMLP(nn.Module):
    """k independent MLPs d_in → width → … → 1, evaluated as one batched product.

    Network j has its own weights W_l[j] (no sharing): output j depends only on w_j, as
    NeuralEF's k networks (seed §3.2). ``depth`` counts linear layers (seed: 3). Weights are
    initialised like :class:`torch.nn.Linear` (U(±1/sqrt(fan_in))) from ``seed``.
    Input (B, d_in) → output (B, k).
    """

    def __init__(self, d_in: int, k: int, width: int = 32, depth: int = 3,
                 activation: str = "sincos", seed: int = 0, dtype="float32"):
        super().__init__()
        if depth < 1 or width < 1 or k < 1 or d_in < 1:
            raise ValueError("ParallelMLP: d_in, k, width and depth must be positive integers.")
        g = torch.Generator().manual_seed(int(seed))
        dt = _tdtype(dtype)
        sizes = [d_in] + [width] * (depth - 1) + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter((torch.rand(k, a, b, generator=g, dtype=dt) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(k, 1, b, generator=g, dtype=dt) * 2 - 1) * bound))
        self.act = _activation(activation)
        self.k = k

    def forward(self, X):
        W0, b0 = self.weights[0], self.biases[0]
        k, d, w = W0.shape
        # first layer of all k networks as one GEMM: X (B, d) @ [W0_1 … W0_k] (d, k·w)
        H = (X @ W0.permute(1, 0, 2).reshape(d, k * w)).reshape(-1, k, w).transpose(0, 1) + b0
        n = len(self.weights)
        if n > 1:
            H = self.act(H)
        for l in range(1, n):
            H = torch.baddbmm(self.biases[l], H, self.weights[l])
            if l < n - 1:
                H = self.act(H)
        return H[..., 0].T  # (B, k)


class SharedMLP(nn.Module):
    """One MLP trunk with k outputs (weight sharing, the seed's "future work" §6).

    Output j is no longer a function of its own weights only; the hand gradient (nef-grad)
    and one VJP still give the gradient of eq. (nef-loss) with its stop-gradients. A test
    point then costs one network pass instead of k.
    """

    def __init__(self, d_in: int, k: int, width: int = 256, depth: int = 3,
                 activation: str = "relu", seed: int = 0, dtype="float32"):
        super().__init__()
        torch.manual_seed(int(seed))
        dt = _tdtype(dtype)
        sizes = [d_in] + [width] * (depth - 1) + [k]
        layers = []
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, dtype=dt))
            if l < depth - 1:
                layers.append(_activation(activation))
        self.body = nn.Sequential(*layers)
        self.k = k

    def forward(self, X):
        return self.body(X)


class ParallelCNN(nn.Module):
    """k independent CNNs Conv5-ReLU-MaxPool2-Conv5-ReLU-MaxPool2-Linear-ReLU-Linear (seed §4.2.1).

    Implemented with grouped convolutions (groups = k), so network j has its own filters.
    Input (B, C·H·W) flattened row-major as (H, W, C) (the :class:`krepes_lib.data.Dataset`
    layout), ``image_shape`` = (H, W) or (H, W, C); output (B, k). Widths are per network.
    """

    def __init__(self, image_shape, k: int, widths=(8, 16), hidden: int = 32, seed: int = 0,
                 dtype="float32"):
        super().__init__()
        torch.manual_seed(int(seed))
        self.image_shape = tuple(image_shape)
        H, W = self.image_shape[:2]
        C = self.image_shape[2] if len(self.image_shape) == 3 else 1
        c1, c2 = widths
        self.k, self.C = k, C
        dt = _tdtype(dtype)
        self.conv1 = nn.Conv2d(k * C, k * c1, 5, groups=k, dtype=dt)
        self.conv2 = nn.Conv2d(k * c1, k * c2, 5, groups=k, dtype=dt)
        h = ((H - 4) // 2 - 4) // 2
        w = ((W - 4) // 2 - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"image_shape={image_shape} is too small for two 5×5 conv + 2×2 pool stages.")
        self.flat = c2 * h * w
        self.fc1 = nn.Parameter(torch.randn(k, self.flat, hidden, dtype=dt) / math.sqrt(self.flat))
        self.b1 = nn.Parameter(torch.zeros(k, 1, hidden, dtype=dt))
        self.fc2 = nn.Parameter(torch.randn(k, hidden, 1, dtype=dt) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(k, 1, 1, dtype=dt))

    def forward(self, X):
        B = X.shape[0]
        H, W = self.image_shape[:2]
        img = X.reshape(B, H, W, self.C).permute(0, 3, 1, 2)  # (B, C, H, W)
        img = img.repeat(1, self.k, 1, 1)
        z = torch.max_pool2d(torch.relu(self.conv1(img)), 2)
        z = torch.max_pool2d(torch.relu(self.conv2(z)), 2)
        z = z.reshape(B, self.k, self.flat).transpose(0, 1)  # (k, B, flat)
        z = torch.relu(torch.baddbmm(self.b1, z, self.fc1))
        return torch.baddbmm(self.b2, z, self.fc2)[..., 0].T


# ----------------------------------------------------------------------------------------
# Objective and its hand-derived gradient
# ----------------------------------------------------------------------------------------
def neuralef_objective(Psi, K):
    """ℓ of eq. (nef-loss) = seed eq. (17), with sg on ψ̂_i (i < j) in the penalty.

    Parameters: Psi (B, k) L2-normalised outputs, K (B, B) kernel block. Autograd of this
    function is the reference the tests compare :func:`neuralef_grad` with.
    """
    B, k = Psi.shape
    KPsi = K @ Psi
    total = Psi.new_zeros(())
    for j in range(k):
        total = total + Psi[:, j] @ KPsi[:, j]
        for i in range(j):
            psi_i = Psi[:, i].detach()
            r_ij = psi_i @ (K @ Psi[:, j])
            r_ii = psi_i @ (K @ psi_i)
            total = total - r_ij ** 2 / r_ii
    return -total / B**2


def neuralef_grad(Psi, K):
    """∂ℓ/∂Ψ by hand, eq. (nef-grad) = seed eq. (18), and R̃ = ΨᵀKΨ/B², eq. (nef-R).

    G[:, j] = −(2/B²) K(ψ̂_j − Σ_{i<j} (R̃_ij/R̃_ii) ψ̂_i), i.e. G = −(2/B²) (KΨ)(I − M) with
    M strictly upper triangular, M_ij = R̃_ij / R̃_ii. Returns (G (B, k), R (k, k)).
    """
    B, k = Psi.shape
    KPsi = K @ Psi
    R = (Psi.T @ KPsi) / B**2
    M = torch.triu(R / torch.diagonal(R)[:, None], diagonal=1)
    G = -(2.0 / B**2) * (KPsi - KPsi @ M)
    return G, R


# ----------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RandomFeatureKernel(Kernel):
    """κ(x, x') ≈ (1/S) Σ_s φ_s(x) φ_s(x') + c, eq. (nef-rf) = seed eqs. (19)-(20).

    ``feature_fn`` maps a NumPy block (b, d) to features (b, D); ``n_samples`` is S (the
    divisor); ``const`` adds an analytic constant (a bias variance). A Kernel like the others:
    Nyström, KREPES models and :class:`NeuralEF` accept it; NeuralEF computes the training
    features once (:meth:`features`) and forms each batch block from them.
    """

    feature_fn: Callable = None
    n_samples: int = 1
    const: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    name = "random_features"

    def features(self, X, batch: int = 512):
        """φ(X), shape (n, D), in blocks of ``batch`` rows; the last result is cached (keyed by
        a SHA-1 of X), so the training features are computed once per kernel."""
        import hashlib

        X = np.ascontiguousarray(to_host(X))
        key = (X.shape, str(X.dtype), hashlib.sha1(X.view(np.uint8)).hexdigest())
        if key in self._cache:
            return self._cache[key]
        out = np.concatenate([np.asarray(self.feature_fn(X[s:s + batch]))
                              for s in range(0, X.shape[0], batch)], 0)
        self._cache.clear()
        self._cache[key] = out
        return out

    def _block(self, xp, X, Y):
        FX = self.features(X)
        FY = FX if Y is X else self.features(Y)
        return xp.asarray((FX @ FY.T) / self.n_samples + self.const, dtype=X.dtype)

    def _diag(self, xp, X):
        FX = self.features(X)
        return xp.asarray((FX * FX).sum(1) / self.n_samples + self.const, dtype=X.dtype)


@dataclass(frozen=True)
class ErfNNGP(Kernel):
    """NNGP kernel of an infinite-width erf MLP with ``depth`` hidden layers, eq. (nef-erf).

    Σ¹ = σ_w² x·y/d + σ_b²;  Σˡ⁺¹ = σ_w² (2/π) arcsin(2Σˡ_xy / sqrt((1+2Σˡ_xx)(1+2Σˡ_yy))) + σ_b²
    (Williams 1998: E[erf(u) erf(v)] for (u, v) ~ N(0, Σˡ)). Weights N(0, σ_w²/fan_in),
    biases N(0, σ_b²), as the seed's App. B priors (σ_w² = 2, σ_b² = 1).
    """

    depth: int = 2
    sigma_w2: float = 2.0
    sigma_b2: float = 1.0
    name = "erf_nngp"

    def __post_init__(self):
        if int(self.depth) != self.depth or self.depth < 1:
            raise ValueError(f"depth={self.depth} must be a positive integer (hidden layers).")
        if not self.sigma_w2 > 0 or self.sigma_b2 < 0:
            raise ValueError("sigma_w2 must be > 0 and sigma_b2 >= 0.")

    def _block(self, xp, X, Y):
        d = X.shape[1]
        S = self.sigma_w2 * (X @ Y.T) / d + self.sigma_b2
        sx = self.sigma_w2 * _sqnorms(xp, X) / d + self.sigma_b2
        sy = self.sigma_w2 * _sqnorms(xp, Y) / d + self.sigma_b2
        for _ in range(int(self.depth)):
            den = xp.sqrt((1 + 2 * sx)[:, None] * (1 + 2 * sy)[None, :])
            S = self.sigma_w2 * (2 / math.pi) * xp.arcsin(xp.clip(2 * S / den, -1, 1)) + self.sigma_b2
            sx = self.sigma_w2 * (2 / math.pi) * xp.arcsin(2 * sx / (1 + 2 * sx)) + self.sigma_b2
            sy = self.sigma_w2 * (2 / math.pi) * xp.arcsin(2 * sy / (1 + 2 * sy)) + self.sigma_b2
        return S

    def _diag(self, xp, X):
        d = X.shape[1]
        s = self.sigma_w2 * _sqnorms(xp, X) / d + self.sigma_b2
        for _ in range(int(self.depth)):
            s = self.sigma_w2 * (2 / math.pi) * xp.arcsin(2 * s / (1 + 2 * s)) + self.sigma_b2
        return s


def cnn_gp_features(image_shape, n_nets: int = 32, width: int = 16, hidden: int = 16,
                    bias_var: float = 0.01, seed: int = 0) -> RandomFeatureKernel:
    """Monte-Carlo CNN-GP kernel of seed §4.2.1 / App. B, eq. (nef-rf) with S = ``n_nets``.

    Architecture Conv5-ReLU-MaxPool2-Conv5-ReLU-MaxPool2-Linear-ReLU-Linear, weights
    N(0, 2/fan_in), biases N(0, ``bias_var``) (seed: 0.01), conv width 16 (seed). The output
    layer's expectation is taken analytically: E_{w,b}[g(x)g(x')] = (2/L) a(x)·a(x') + σ_b²
    for the L = ``hidden`` penultimate units a(x) of each random network; the rest is Monte
    Carlo over ``n_nets`` draws (the seed uses S = 2000 full draws; documented substitute).
    """
    H, W = image_shape[:2]
    C = image_shape[2] if len(image_shape) == 3 else 1
    g = torch.Generator().manual_seed(int(seed))
    S = int(n_nets)
    sd_b = math.sqrt(bias_var)
    W1 = torch.randn(S * width, C, 5, 5, generator=g) * math.sqrt(2.0 / (C * 25))
    b1 = torch.randn(S * width, generator=g) * sd_b
    W2 = torch.randn(S * width, width, 5, 5, generator=g) * math.sqrt(2.0 / (width * 25))
    b2 = torch.randn(S * width, generator=g) * sd_b
    h = ((H - 4) // 2 - 4) // 2
    w = ((W - 4) // 2 - 4) // 2
    flat = width * h * w
    W3 = torch.randn(S, flat, hidden, generator=g) * math.sqrt(2.0 / flat)
    b3 = torch.randn(S, 1, hidden, generator=g) * sd_b

    @torch.no_grad()
    def fn(Xb):
        x = torch.as_tensor(np.asarray(Xb, dtype=np.float32)).reshape(-1, H, W, C).permute(0, 3, 1, 2)
        B = x.shape[0]
        z = torch.max_pool2d(torch.relu(torch.conv2d(x, W1, b1)), 2)
        z = torch.max_pool2d(torch.relu(torch.conv2d(z, W2, b2, groups=S)), 2)
        z = z.reshape(B, S, flat).transpose(0, 1)
        a = torch.relu(torch.baddbmm(b3, z, W3))  # (S, B, L)
        return (a.transpose(0, 1).reshape(B, S * hidden) * math.sqrt(2.0 / hidden)).numpy()

    return RandomFeatureKernel(feature_fn=fn, n_samples=S, const=bias_var)


def _functional(model):
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def f(p, x):
        return torch.func.functional_call(model, (p, buffers), (x,)).reshape(x.shape[0])
    return f, params


def exact_entk_features(model: nn.Module, X, batch: int = 256):
    """Rows of the Jacobian J(x) = ∂_θ g(x; θ) of a scalar-output network, shape (n, P).

    κ_NTK(x, x') = J(x)·J(x') (seed eq. 3), eq. (entk), by per-sample gradients
    (``torch.func.vmap(grad)``); the ground truth of seed Fig. 4.
    """
    f, params = _functional(model)
    names = list(params)

    def one(p, x):
        return f(p, x[None])[0]
    g = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0))
    X = torch.as_tensor(np.asarray(X), dtype=next(iter(params.values())).dtype)
    out = []
    for s in range(0, X.shape[0], batch):
        G = g(params, X[s:s + batch])
        out.append(torch.cat([G[nm].reshape(G[nm].shape[0], -1) for nm in names], 1))
    return torch.cat(out, 0).numpy()


def entk_features(model: nn.Module, n_samples: int = 10, seed: int = 0) -> RandomFeatureKernel:
    """eNTK random features, eq. (nef-rf) = seed eq. (20): φ_s(x) = J(x) v_s, v_s Rademacher.

    J(x)v_s is computed exactly by forward-mode differentiation (``torch.func.jvp``), one
    pass per direction — the seed uses a finite difference (g(θ + εv) − g(θ))/ε instead.
    """
    f, params = _functional(model)
    g = torch.Generator().manual_seed(int(seed))
    V = [{k: (torch.randint(0, 2, v.shape, generator=g) * 2 - 1).to(v.dtype) for k, v in params.items()}
         for _ in range(int(n_samples))]

    @torch.no_grad()
    def fn(Xb):
        x = torch.as_tensor(np.asarray(Xb), dtype=next(iter(params.values())).dtype)
        cols = [torch.func.jvp(lambda p: f(p, x), (params,), (v,))[1] for v in V]
        return torch.stack(cols, 1).numpy()

    return RandomFeatureKernel(feature_fn=fn, n_samples=int(n_samples))


# ----------------------------------------------------------------------------------------
# NeuralEF
# ----------------------------------------------------------------------------------------
def _is_torch_ntk(kernel) -> bool:
    try:
        from ..neural.ntk import TorchNTK
    except Exception:  # the eNTK module is optional here
        return False
    return isinstance(kernel, TorchNTK)


@dataclass
class NeuralEFHistory:
    loss: list = field(default_factory=list)
    eigenvalues: list = field(default_factory=list)
    seconds: float = 0.0
    kernel_seconds: float = 0.0


class NeuralEF:
    """Top-k eigenpairs of a kernel by k networks (seed Alg. 1).

    Parameters
    ----------
    net : nn.Module
        Maps a batch (B, d) to raw outputs (B, k); output j must depend only on its own
        weights (:class:`ParallelMLP`, :class:`ParallelCNN`). An :class:`L2BatchNorm` is appended.
    k : int
        Number of eigenfunctions (= outputs of ``net``).
    lr : float, default 1e-3
        Adam learning rate (seed §4).
    ema : float, default 0.99
        EMA decay of σ (eq. nef-l2bn) and of the eigenvalue estimates (eq. nef-mu).
    dtype : {"float32", "float64"}, default "float32"

    Attributes
    ----------
    eigenvalues : ndarray (k,)
        μ̂_j, the EMA of R̃_jj.
    history : NeuralEFHistory

    Examples
    --------
    >>> import numpy as np
    >>> from krepes_lib.kernels import RBF
    >>> X = np.random.default_rng(0).uniform(-2, 2, (256, 1))
    >>> nef = NeuralEF(ParallelMLP(1, k=3), k=3).fit(X, RBF(sigma=1.0), iterations=20, progress=False)
    >>> nef.predict(X).shape, nef.eigenvalues.shape
    ((256, 3), (3,))
    """

    def __init__(self, net: nn.Module, k: int, lr: float = 1e-3, ema: float = 0.99, dtype="float32"):
        if int(k) != k or k < 1:
            raise ValueError(f"k={k} must be a positive integer (eigenfunctions).")
        self.dtype = _tdtype(dtype)
        self.k = int(k)
        self.net = net.to(self.dtype)
        self.norm = L2BatchNorm(self.k, ema=ema).to(self.dtype)
        self.lr, self.ema = float(lr), float(ema)
        self.eigenvalues = np.zeros(self.k)
        self.history = NeuralEFHistory()

    # -- training ------------------------------------------------------------------
    def _forward_train(self, Xb):
        self.net.train()
        self.norm.train()
        H = self.net(Xb)
        if H.ndim != 2 or H.shape[1] != self.k:
            raise ValueError(f"net must map (B, d) to (B, k={self.k}); got {tuple(H.shape)}.")
        return self.norm(H)

    def fit(self, X, kernel, iterations: int = 2000, batch_size: int = 256, seed: int = 0,
            progress: bool = True, precompute_features: bool = True):
        """Train on X (n, d) for ``iterations`` Adam steps (seed Alg. 1); returns self.

        ``kernel``: a :class:`krepes_lib.kernels.Kernel` (the block of each batch is computed
        on the fly, float64 then cast), or a :class:`RandomFeatureKernel` or
        :class:`krepes_lib.neural.ntk.TorchNTK` (features of X computed once when
        ``precompute_features``, each block F_b F_bᵀ). B = min(n, ``batch_size``) (seed §4.1).
        Batches are drawn without replacement from a seeded NumPy generator.
        """
        from tqdm.auto import tqdm

        if not isinstance(kernel, Kernel):
            raise TypeError(f"kernel must be a krepes_lib.kernels.Kernel; got {type(kernel).__name__}.")
        Xh = np.asarray(to_host(X))
        if Xh.ndim != 2 or Xh.shape[0] < 2:
            raise ValueError(f"X must be a 2-D (n, d) array with n >= 2; got shape {Xh.shape}.")
        if int(iterations) < 1:
            raise ValueError(f"iterations={iterations} must be >= 1.")
        n = Xh.shape[0]
        B = int(min(n, batch_size))
        rng = np.random.default_rng(seed)
        torch.manual_seed(int(seed))
        Xt = torch.as_tensor(Xh, dtype=self.dtype)
        t0 = time.perf_counter()
        F, div, const = None, 1.0, 0.0
        if precompute_features and isinstance(kernel, RandomFeatureKernel):
            F = torch.as_tensor(kernel.features(Xh), dtype=self.dtype)
            div, const = float(kernel.n_samples), float(kernel.const)
        elif precompute_features and _is_torch_ntk(kernel):  # φ(X)φ(Y)ᵀ = K (krepes_lib.neural.ntk)
            F = torch.as_tensor(np.asarray(to_host(kernel.features(Xh))), dtype=self.dtype)
        self.history.kernel_seconds += time.perf_counter() - t0
        params = list(self.net.parameters())
        opt = torch.optim.Adam(params, lr=self.lr)
        mu = None
        perm, pos = rng.permutation(n), 0
        bar = tqdm(range(int(iterations)), desc="NeuralEF", disable=not progress, leave=False)
        for it in bar:
            if pos + B > n:
                perm, pos = rng.permutation(n), 0
            idx = perm[pos:pos + B]
            pos += B
            if F is not None:
                Fb = F[idx]
                Kb = Fb @ Fb.T / div + const
            else:
                xb = Xh[idx].astype(np.float64)
                Kb = torch.as_tensor(kernel(xb, dtype="float64"), dtype=self.dtype)
            opt.zero_grad(set_to_none=True)
            Psi = self._forward_train(Xt[idx])
            G, R = neuralef_grad(Psi.detach(), Kb)  # eq. (nef-grad), by hand
            Psi.backward(G)                          # one vector-Jacobian product
            opt.step()
            r = torch.diagonal(R).detach().double().numpy()
            mu = r.copy() if mu is None else self.ema * mu + (1 - self.ema) * r  # eq. (nef-mu)
            if it % 50 == 0 or it == iterations - 1:
                with torch.no_grad():
                    self.history.loss.append(float(-(torch.diagonal(R).sum()
                                                     - (torch.triu(R, 1) ** 2 / torch.diagonal(R)[:, None]).sum())))
                self.history.eigenvalues.append(mu.copy())
        self.eigenvalues = mu
        self.history.seconds += time.perf_counter() - t0
        return self

    # -- inference -----------------------------------------------------------------
    @torch.no_grad()
    def predict(self, X, batch: int = 1024):
        """ψ̂(X), shape (n, k), NumPy: networks then L2BN with the EMA of σ (test mode)."""
        self.net.eval()
        self.norm.eval()
        Xh = np.asarray(to_host(X))
        out = [self.norm(self.net(torch.as_tensor(Xh[s:s + batch], dtype=self.dtype))).numpy()
               for s in range(0, Xh.shape[0], batch)]
        return np.concatenate(out, 0)

    def features(self, X, batch: int = 1024):
        """φ(X) = ψ̂(X) diag(sqrt(μ̂)), the learned Mercer feature map, eq. (nef-bridge)."""
        return self.predict(X, batch) * np.sqrt(np.maximum(self.eigenvalues, 0.0))[None, :].astype(np.float32)

    def kernel_approx(self, X, Y=None):
        """κ̂(X, Y) = Σ_j μ̂_j ψ̂_j(x) ψ̂_j(y) (seed §4.2.2), a block that fits in memory."""
        FX = self.features(X)
        FY = FX if Y is None else self.features(Y)
        return FX @ FY.T


# ----------------------------------------------------------------------------------------
# Nyström reference (seed App. B) and the bridge to KREPES
# ----------------------------------------------------------------------------------------
def nystrom_eigenfunctions(kernel: Kernel, X_train, k: int, solver: str = "eigh"):
    """Top-k Nyström eigenpairs (seed App. B: scipy ``eigh`` with ``subset_by_index``).

    ``solver="lanczos"`` uses ``scipy.sparse.linalg.eigsh`` (ARPACK, a few dozen products
    with K instead of an O(N³) tridiagonalisation; same eigenpairs up to its tolerance) —
    for large N where only the result, not the seed's timing, matters.

    Returns (mu (k,), psi_fn, seconds): μ̂_j = λ_j / N and ψ̂_j(x) = κ(x, X)u_j √N / λ_j,
    eq. (nef-nys-oos) = seed eq. (8), so that ψ̂_j(x_n) = √N u_nj on the training points.
    ``seconds`` times the kernel matrix and the eigendecomposition.
    """
    import scipy.linalg

    Xh = np.asarray(to_host(X_train), dtype=np.float64)
    N = Xh.shape[0]
    if not 1 <= k <= N:
        raise ValueError(f"k={k} must be in [1, N={N}].")
    t0 = time.perf_counter()
    if isinstance(kernel, RandomFeatureKernel):  # features of the training set once
        F = kernel.features(Xh).astype(np.float64)
        K = F @ F.T / kernel.n_samples + kernel.const
    else:
        K = kernel(Xh, dtype="float64")
    if solver == "eigh":
        lam, U = scipy.linalg.eigh(K, subset_by_index=[N - k, N - 1])
    elif solver == "lanczos":
        import scipy.sparse.linalg

        v0 = np.full(N, 1.0 / math.sqrt(N))  # deterministic start vector
        lam, U = scipy.sparse.linalg.eigsh(K, k=k, which="LA", v0=v0, tol=1e-10)
        order = np.argsort(lam)
        lam, U = lam[order], U[:, order]
    else:
        raise ValueError(f"solver={solver!r}: use 'eigh' (seed App. B) or 'lanczos'.")
    seconds = time.perf_counter() - t0
    del K
    lam, U = lam[::-1], U[:, ::-1]
    coef = U * (math.sqrt(N) / lam)[None, :]

    on_train = np.ascontiguousarray(U * math.sqrt(N))  # ψ̂_j(x_n) = √N u_nj: eq. (8) at x_n, K u = λ u
    if isinstance(kernel, RandomFeatureKernel):
        Fc = F.T @ coef / kernel.n_samples
        c0 = kernel.const * coef.sum(0)

        def extend(X):
            return kernel.features(np.asarray(to_host(X))).astype(np.float64) @ Fc + c0[None, :]
    else:
        def extend(X):
            return kernel.matmul(np.asarray(to_host(X), dtype=np.float64), Xh, coef)

    def psi(X):
        """ψ̂(X), eq. (8); the training array itself (``X is X_train``) is not recomputed."""
        return on_train.copy() if X is X_train else extend(X)
    return lam / N, psi, seconds


def neuralef_pc_model(nef: NeuralEF, X, m: int, h: int, seed: int = 0, dtype=None):
    """A KREPES model whose PC initialisation is the NeuralEF eigenbasis, eq. (nef-bridge).

    Z = φ(X) (n, k) are the NeuralEF features; landmarks are m uniform rows of Z; the kernel
    is linear on Z, so K_mm = Z_m Z_mᵀ and the PC init f₀(x) = Λ_h^{-1/2}U_hᵀ Z_m φ(x) (eq.
    (nys-pc)) is the top-h principal directions of φ on the landmarks — ≈ [√μ̂_j ψ̂_j(x)]_{j≤h}
    when the ψ̂_j are orthonormal under q. Needs h ≤ k. Returns (model, Z) — train the model
    on Z with :func:`krepes_lib.train.fit` like any other.
    """
    from ..landmarks import select_landmarks
    from ..model import NystromModel
    from ..nystrom import Nystrom

    if h > nef.k:
        raise ValueError(f"h={h} exceeds k={nef.k} eigenfunctions; train NeuralEF with k >= h.")
    Z = nef.features(X)
    sel = select_landmarks(Z, m, method="uniform", seed=seed)
    nys = Nystrom(Linear(), sel, dtype=dtype)
    return NystromModel(nys, h, coords="whitened", init="pc"), Z


class CollapsedModel:
    """f(x) = Bᵀ φ(x) + γ with B = Z_mᵀ Ã (k × h): a model of :func:`neuralef_pc_model` whose
    test cost is k network passes + k·h flops (eq. (nef-bridge)), not m kernel evaluations."""

    def __init__(self, model, nef: NeuralEF):
        Zm = np.asarray(to_host(model.nystrom.landmarks), dtype=np.float64)
        A = np.asarray(to_host(model.A_tilde), dtype=np.float64)
        self.B = (Zm.T @ A).astype(np.float32)
        self.gamma = np.asarray(to_host(model.gamma), dtype=np.float32)
        self.nef = nef

    def embed(self, X):
        return self.nef.features(X) @ self.B + self.gamma[None, :]


# ----------------------------------------------------------------------------------------
# A small CNN binary classifier (seed §4.2.2 uses ResNet-20; documented substitute)
# ----------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """Conv3(c)-ReLU-MaxPool2-Conv3(c)-ReLU-MaxPool2-Linear(1) on (H, W, C) images; one logit."""

    def __init__(self, image_shape=(32, 32, 3), width: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(int(seed))
        H, W, C = image_shape
        self.image_shape = image_shape
        self.c1 = nn.Conv2d(C, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width * (H // 4) * (W // 4), 1)

    def forward(self, X):
        H, W, C = self.image_shape
        x = X.reshape(-1, H, W, C).permute(0, 3, 1, 2)
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))[:, 0]


def train_classifier(model: nn.Module, X, y, epochs: int = 10, batch_size: int = 64,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True):
    """Logistic-loss training of a one-logit classifier with Adam; returns training accuracy."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(epochs), desc="classifier", disable=not progress, leave=False):
        perm = rng.permutation(len(Xt))
        for s in range(0, len(Xt), batch_size):
            b = perm[s:s + batch_size]
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(Xt[b]), yt[b])
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((model(Xt) > 0).float() == yt).float().mean())


# ----------------------------------------------------------------------------------------
# Experiment steps of notebook 10 (the notebook only calls these)
# ----------------------------------------------------------------------------------------
def abs_cosine(P, T):
    """|cos| between matching columns of P and T (n, k): sign-free eigenfunction agreement."""
    P = np.asarray(P, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if P.shape != T.shape:
        raise ValueError(f"abs_cosine: P {P.shape} and T {T.shape} must have the same shape.")
    return np.abs((P * T).sum(0)) / (np.linalg.norm(P, axis=0) * np.linalg.norm(T, axis=0) + 1e-300)


def subspace_overlap(P, T) -> float:
    """‖Q_Pᵀ Q_T‖²_F / k ∈ [0, 1] for the column spans of P and T (n, k): the mean squared cosine
    of the principal angles; 1 when the spans agree whatever the basis inside them (the measure
    for near-degenerate eigenvalues, where single eigenfunctions are not identifiable)."""
    P = np.asarray(P, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if P.shape != T.shape:
        raise ValueError(f"subspace_overlap: P {P.shape} and T {T.shape} must have the same shape.")
    Qp, _ = np.linalg.qr(P)
    Qt, _ = np.linalg.qr(T)
    return float(np.sum((Qp.T @ Qt) ** 2) / P.shape[1])


def mlp_gp_kernel(activation: str) -> Kernel:
    """The MLP-GP kernel of seed §4.2.1 / App. B: a 3-layer MLP (2 hidden layers), weights
    N(0, 2/fan_in), biases N(0, 1), in closed form (the seed estimates it by Monte Carlo with
    S = 10000 width-16 networks): ReLU → :class:`~krepes_lib.kernels.ArcCosineNNGP`,
    erf → :class:`ErfNNGP`."""
    from ..kernels import ArcCosineNNGP

    if activation == "relu":
        return ArcCosineNNGP(depth=2, sigma_w2=2.0, sigma_b2=1.0)
    if activation == "erf":
        return ErfNNGP(depth=2, sigma_w2=2.0, sigma_b2=1.0)
    raise ValueError(f"activation={activation!r}: use 'relu' or 'erf'.")


def classic_kernel_run(kernel: Kernel, X_train, X_eval, truth, k: int = 10, iterations: int = 2000,
                       width: int = 32, activation: str = "sincos", lr: float = 1e-3,
                       batch_size: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """NeuralEF and Nyström on the same N = len(X_train) samples vs the ground truth.

    ``truth`` = ``nystrom_eigenfunctions(kernel, X_big, k)`` (a large-N Nyström, seed §4.1).
    Eigenfunctions are compared on ``X_eval`` by :func:`abs_cosine`; eigenvalues directly.
    Networks: ``k`` 3-layer MLPs of ``width`` with sin/cos units (seed App. B).
    """
    mu_t, psi_t = truth[0], truth[1]
    X_train = np.asarray(X_train, dtype=np.float32)
    net = ParallelMLP(X_train.shape[1], k, width=width, depth=3, activation=activation, seed=seed)
    nef = NeuralEF(net, k, lr=lr).fit(X_train, kernel, iterations=iterations, batch_size=batch_size,
                                       seed=seed, progress=progress)
    mu_n, psi_n, t_nys = nystrom_eigenfunctions(kernel, X_train, k)
    T = psi_t(X_eval)
    P, Nn = nef.predict(X_eval), psi_n(X_eval)
    return dict(cos_nef=abs_cosine(P, T), cos_nys=abs_cosine(Nn, T), overlap_nef=subspace_overlap(P, T),
                overlap_nys=subspace_overlap(Nn, T), mu_nef=nef.eigenvalues,
                mu_nys=mu_n, mu_truth=mu_t[:k], seconds_nef=nef.history.seconds, seconds_nys=t_nys,
                psi_nef=P, psi_nys=Nn, psi_truth=T)


def timing_vs_n(kernel: Kernel, low: float, high: float, ns, k: int = 10, iterations: int = 2000,
                width: int = 32, batch_size: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """Training time vs sample size (seed Fig. 2 right): Nyström (kernel matrix + ``eigh``
    top-k) and NeuralEF (``iterations`` steps, B = min(N, ``batch_size``)) on N ~ U[low, high]
    (1-D). Returns times, log-log slopes over the three largest N, and the crossover N (where
    Nyström becomes slower; if not reached, extrapolated from t_nys ∝ N³ at the largest N)."""
    rng = np.random.default_rng(seed)
    t_nys, t_nef = [], []
    for n in ns:
        X = rng.uniform(low, high, (int(n), 1)).astype(np.float32)
        t_nys.append(nystrom_eigenfunctions(kernel, X, min(k, int(n)))[2])
        nef = NeuralEF(ParallelMLP(1, k, width=width, seed=seed), k).fit(
            X, kernel, iterations=iterations, batch_size=batch_size, seed=seed, progress=progress)
        t_nef.append(nef.history.seconds)
    ns = np.asarray(ns, dtype=np.float64)
    t_nys, t_nef = np.asarray(t_nys), np.asarray(t_nef)
    sl = slice(-3, None)
    slope_nys = float(np.polyfit(np.log(ns[sl]), np.log(t_nys[sl]), 1)[0])
    slope_nef = float(np.polyfit(np.log(ns[sl]), np.log(t_nef[sl]), 1)[0])
    above = np.nonzero(t_nys > t_nef)[0]
    if above.size and above[0] > 0:
        i = above[0]
        # log-log interpolation of the difference between grid points i-1 and i
        d0 = math.log(t_nys[i - 1] / t_nef[i - 1])
        d1 = math.log(t_nys[i] / t_nef[i])
        a = d0 / (d0 - d1)
        cross, how = float(math.exp(math.log(ns[i - 1]) + a * (math.log(ns[i]) - math.log(ns[i - 1])))), "measured"
    elif above.size:
        cross, how = float(ns[0]), "below the smallest N"
    else:
        cross = float(ns[-1] * (t_nef[-1] / t_nys[-1]) ** (1 / 3))
        how = "extrapolated (t_nys ∝ N³ from the largest N)"
    return dict(ns=ns, seconds_nys=t_nys, seconds_nef=t_nef, slope_nys=slope_nys,
                slope_nef=slope_nef, crossover_n=cross, crossover_how=how)


def cluster_accuracy(Z, y, seed: int = 0) -> float:
    """2-means on Z, accuracy under the better of the two label assignments (seed §4.2.2)."""
    from sklearn.cluster import KMeans

    y = np.asarray(y)
    if np.unique(y).size != 2:
        raise ValueError("cluster_accuracy: y must hold exactly two classes.")
    lab = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(np.asarray(Z, dtype=np.float64))
    acc = float((lab == (y == y.max())).mean())
    return max(acc, 1.0 - acc)


def seconds_per_point(fn, X, repeats: int = 3):
    """Best-of-``repeats`` wall seconds of ``fn(X)`` divided by len(X) (test cost per point)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(X)
        best = min(best, time.perf_counter() - t0)
    return best / len(X)


def ntk_experiment(X_train, y_train, X_test, y_test, image_shape, k: int = 10, cnn_width: int = 8,
                   epochs: int = 10, n_rf: int = 10, nef_width: int = 64, iterations: int = 1000,
                   batch_size: int = 256, seed: int = 0, progress: bool = False) -> dict:
    """Seed Figs. 4-5 with a small CNN (ResNet-20 in the seed): the eNTK of a trained binary
    classifier, NeuralEF vs random features vs the exact Jacobian kernel.

    1. :class:`SmallCNN` trained on (X_train, y_train) with the logistic loss;
    2. NeuralEF (k :class:`ParallelMLP` of ``nef_width``, ReLU) on the **exact** Jacobian kernel
       J Jᵀ of the training images (the seed uses eq. (20) with S = 4000; our network is small
       enough for per-sample gradients);
    3. on X_test: the exact kernel J Jᵀ (ground truth), NeuralEF's Σ μ̂ ψ̂ψ̂ᵀ, random features
       with S = ``n_rf`` directions (eq. 20; S = k matches NeuralEF's k network passes), and the
       best rank-k approximation (eigh of the exact kernel) as the floor;
    4. top-k eigenvalues: NeuralEF's μ̂ vs the eigenvalues of J Jᵀ/n on the training images;
    5. 2-means accuracy on the test projections (NeuralEF ψ̂, random features, raw pixels).
    """
    clf = SmallCNN(tuple(image_shape), width=cnn_width, seed=seed)
    train_acc = train_classifier(clf, X_train, y_train, epochs=epochs, seed=seed, progress=progress)
    clf.eval()
    with torch.no_grad():
        test_acc = float(((clf(torch.as_tensor(X_test)) > 0).numpy() == (np.asarray(y_test) == 1)).mean())
    n_params = int(sum(p.numel() for p in clf.parameters()))
    exact = RandomFeatureKernel(feature_fn=lambda Xb: exact_entk_features(clf, Xb), n_samples=1)
    J_tr = exact.features(X_train).astype(np.float64)
    s = np.linalg.svd(J_tr, compute_uv=False)
    mu_truth = (s[:k] ** 2) / J_tr.shape[0]
    net = ParallelMLP(int(np.prod(image_shape)), k, width=nef_width, depth=3, activation="relu", seed=seed)
    nef = NeuralEF(net, k).fit(X_train, exact, iterations=iterations, batch_size=batch_size, seed=seed,
                               progress=progress)
    J_te = exact.features(X_test).astype(np.float64)
    K = J_te @ J_te.T
    K_nef = nef.kernel_approx(X_test).astype(np.float64)
    rf = entk_features(clf, n_samples=n_rf, seed=seed)
    F_rf = rf.features(X_test).astype(np.float64)
    K_rf = F_rf @ F_rf.T / n_rf
    w, V = np.linalg.eigh(K)
    K_best = (V[:, -k:] * w[-k:]) @ V[:, -k:].T
    nrm = np.linalg.norm(K)
    Psi_te = nef.predict(X_test)
    return dict(
        train_acc=train_acc, test_acc=test_acc, n_params=n_params,
        mu_truth=mu_truth, mu_nef=np.asarray(nef.eigenvalues),
        err_nef=float(np.linalg.norm(K_nef - K) / nrm), err_rf=float(np.linalg.norm(K_rf - K) / nrm),
        err_best=float(np.linalg.norm(K_best - K) / nrm),
        K=K, K_nef=K_nef, K_rf=K_rf,
        kmeans_nef=cluster_accuracy(Psi_te, y_test, seed), kmeans_rf=cluster_accuracy(F_rf, y_test, seed),
        kmeans_raw=cluster_accuracy(X_test, y_test, seed),
        sec_point_nef=seconds_per_point(nef.predict, X_test),
        sec_point_rf=seconds_per_point(rf.features, X_test),
        sec_point_exact=seconds_per_point(exact.features, X_test),
        seconds_nef=nef.history.seconds,
    )


def bridge_run(X_train, y_train, X_test, y_test, kernel: Kernel, m: int, h: int, k: int | None = None,
               iterations: int = 1000, width: int = 64, epochs: int = 3, batch_size: int = 256,
               loss: str = "kpca", label_fraction: float = 0.1, net: str = "parallel", seed: int = 0,
               progress: bool = False) -> dict:
    """Nyström PC init vs NeuralEF init for a KREPES model (eq. (nys-pc) vs (nef-bridge)).

    Both arms use the same kernel and the same training rows. Nyström: m uniform landmarks
    (``seed``), Ã₀ = U_hΛ_h^{-1/2}. NeuralEF: a :class:`SharedMLP` of ``width`` with k ≥ h
    outputs trained on the kernel, then :func:`neuralef_pc_model` (linear kernel on φ, m
    landmarks). Each model is probed (10 %-label linear probe) at the initialisation and after
    ``epochs`` of ``loss`` (no augmentation); the trained NeuralEF model is evaluated through
    :class:`CollapsedModel`. Timed: initialisation (landmarks + eigh, or NeuralEF training +
    φ of the training rows), training epochs, and test-time seconds per point.
    ``net``: "parallel" (k networks, :class:`ParallelMLP`, ReLU) or "shared" (:class:`SharedMLP`).
    ``m_break_even`` = m · t_nef / t_nys: the number of landmarks at which the Nyström model's
    test cost (linear in m) would equal NeuralEF's.
    """
    from ..evaluate import linear_probe
    from ..landmarks import select_landmarks
    from ..model import NystromModel
    from ..nystrom import Nystrom
    from ..train import fit

    k = int(k or h)
    Xtr = np.asarray(X_train, dtype=np.float32)
    Xte = np.asarray(X_test, dtype=np.float32)

    def probe(a, b):
        return linear_probe(a, y_train, b, y_test, label_fraction=label_fraction, seed=seed)

    out = {}
    # -- Nyström PC init
    t0 = time.perf_counter()
    nys = Nystrom(kernel, select_landmarks(Xtr, m, method="uniform", seed=seed))
    model = NystromModel(nys, h, init="pc")
    out["init_seconds_nys"] = time.perf_counter() - t0
    out["probe0_nys"] = probe(model.embed(Xtr), model.embed(Xte))
    t0 = time.perf_counter()
    fit(model, Xtr, loss, epochs=epochs, batch_size=batch_size, seed=seed, augment=None, progress=progress)
    out["train_seconds_nys"] = time.perf_counter() - t0
    out["probe1_nys"] = probe(model.embed(Xtr), model.embed(Xte))
    out["test_sec_point_nys"] = seconds_per_point(model.embed, Xte)
    # -- NeuralEF init
    t0 = time.perf_counter()
    if net not in ("parallel", "shared"):
        raise ValueError(f"net={net!r}: use 'parallel' (k networks) or 'shared' (one trunk).")
    body = (ParallelMLP(Xtr.shape[1], k, width=width, activation="relu", seed=seed) if net == "parallel"
            else SharedMLP(Xtr.shape[1], k, width=width, seed=seed))
    nef = NeuralEF(body, k).fit(
        Xtr, kernel, iterations=iterations, batch_size=batch_size, seed=seed, progress=progress)
    model2, Z = neuralef_pc_model(nef, Xtr, m, h, seed=seed)
    out["init_seconds_nef"] = time.perf_counter() - t0
    out["probe0_nef"] = probe(model2.embed(Z), model2.embed(nef.features(Xte)))
    t0 = time.perf_counter()
    fit(model2, Z, loss, epochs=epochs, batch_size=batch_size, seed=seed, augment=None, progress=progress)
    out["train_seconds_nef"] = time.perf_counter() - t0
    col = CollapsedModel(model2, nef)
    out["probe1_nef"] = probe(col.embed(Xtr), col.embed(Xte))
    out["test_sec_point_nef"] = seconds_per_point(col.embed, Xte)
    out["mu_nef"] = np.asarray(nef.eigenvalues)
    out["m_break_even"] = m * out["test_sec_point_nef"] / out["test_sec_point_nys"]
    return out
