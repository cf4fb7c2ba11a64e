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
    "SmallCNN", "train_classifier",
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
        H = X.unsqueeze(0).expand(self.k, *X.shape)  # (k, B, d)
        n = len(self.weights)
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            H = torch.baddbmm(b, H, W)
            if l < n - 1:
                H = self.act(H)
        return H[..., 0].T  # (B, k)


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
    name = "random_features"

    def features(self, X, batch: int = 512):
        X = np.asarray(to_host(X))
        out = [np.asarray(self.feature_fn(X[s:s + batch])) for s in range(0, X.shape[0], batch)]
        return np.concatenate(out, 0)

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
        on the fly, float64 then cast), or a :class:`RandomFeatureKernel` (features of X are
        computed once when ``precompute_features``). B = min(n, ``batch_size``) (seed §4.1).
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
        F = None
        if isinstance(kernel, RandomFeatureKernel) and precompute_features:
            F = torch.as_tensor(kernel.features(Xh), dtype=self.dtype)
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
                Kb = Fb @ Fb.T / kernel.n_samples + kernel.const
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
def nystrom_eigenfunctions(kernel: Kernel, X_train, k: int):
    """Top-k Nyström eigenpairs (seed App. B: scipy ``eigh`` with ``subset_by_index``).

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
    K = kernel(Xh, dtype="float64")
    lam, U = scipy.linalg.eigh(K, subset_by_index=[N - k, N - 1])
    seconds = time.perf_counter() - t0
    lam, U = lam[::-1], U[:, ::-1]
    coef = U * (math.sqrt(N) / lam)[None, :]

    def psi(X):
        return kernel.matmul(np.asarray(to_host(X), dtype=np.float64), Xh, coef)
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
