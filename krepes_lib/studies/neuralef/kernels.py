"""Kernel targets of NeuralEF: random-feature kernels (eq. (nef-rf)), the erf NNGP kernel, the Monte-
Carlo CNN-GP features of seed §4.2.1, eNTK features (exact and sketched, from the library's one
eNTK, :class:`krepes_lib.neural.TorchNTK`) and the closed-form MLP-GP kernels of seed App. B.

Book: *NeuralEF vs Nyström* (``book/neuralef.md``), eqs. (nef-rf), (nef-erf); *The empirical NTK of
a network* (``book/entk.md``), eqs. (entk-proj), (entk-sketch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ...backend import to_host
from ...kernels import Kernel, _sqnorms

__all__ = ["RandomFeatureKernel", "ErfNNGP", "cnn_gp_features", "exact_entk_features", "entk_features",
           "mlp_gp_kernel"]


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
    cache_bytes: int = 256 * 2**20
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    name = "random_features"

    def features(self, X, batch: int = 512):
        """φ(X), shape (n, D), in blocks of ``batch`` rows. Results are cached (keyed by a SHA-1
        of X), the most recently used first, up to ``cache_bytes`` in all (0: no cache), so the
        training features are computed once per kernel even when test features come between."""
        import hashlib

        X = np.ascontiguousarray(to_host(X))
        key = (X.shape, str(X.dtype), hashlib.sha1(X.view(np.uint8)).hexdigest())
        if key in self._cache:
            self._cache[key] = self._cache.pop(key)  # most recently used last
            return self._cache[key]
        out = np.concatenate([np.asarray(self.feature_fn(X[s:s + batch]))
                              for s in range(0, X.shape[0], batch)], 0)
        if out.nbytes <= self.cache_bytes:
            while self._cache and sum(v.nbytes for v in self._cache.values()) + out.nbytes > self.cache_bytes:
                self._cache.pop(next(iter(self._cache)))  # least recently used
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


def exact_entk_features(model, X, batch: int = 256):
    """Rows of the Jacobian J(x) = ∂_θ g(x; θ) of a scalar-output network, shape (n, P).

    κ_NTK(x, x') = J(x)·J(x') (seed eq. 3), eq. (entk): the features of the library's eNTK,
    ``TorchNTK(model, implementation="exact")`` (per-sample Jacobians; eval mode), in the dtype of
    the model's parameters; the ground truth of seed Fig. 4.
    """
    from ...neural import TorchNTK

    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    X = np.asarray(to_host(X), dtype=dtype)
    return np.asarray(to_host(TorchNTK(model, implementation="exact", dtype=dtype, cache_bytes=0).features(X)))


def entk_features(model, n_samples: int = 10, seed: int = 0) -> RandomFeatureKernel:
    """eNTK random features, eq. (nef-rf) = seed eq. (20): φ_s(x) = J(x) p_s / √S with Rademacher
    directions p_s — the library's sketched eNTK, ``TorchNTK(model, implementation="sketch",
    sketch_size=S)``, eq. (entk-sketch), whose J p_s are exact forward-mode products (the seed
    uses a finite difference (g(θ + εv) − g(θ))/ε instead). The features carry the 1/√S, so the
    kernel is φ(x)·φ(x') (``n_samples`` of the returned kernel is 1).
    """
    from ...neural import TorchNTK

    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    ntk = TorchNTK(model, implementation="sketch", sketch_size=int(n_samples), seed=int(seed), dtype=dtype,
                   cache_bytes=0)

    def fn(Xb):
        return np.asarray(to_host(ntk.features(np.asarray(Xb, dtype=dtype))))

    return RandomFeatureKernel(feature_fn=fn, n_samples=1)


def mlp_gp_kernel(activation: str) -> Kernel:
    """The MLP-GP kernel of seed §4.2.1 / App. B: a 3-layer MLP (2 hidden layers), weights
    N(0, 2/fan_in), biases N(0, 1), in closed form (the seed estimates it by Monte Carlo with
    S = 10000 width-16 networks): ReLU → :class:`~krepes_lib.kernels.ArcCosineNNGP`,
    erf → :class:`ErfNNGP`."""
    from ...kernels import ArcCosineNNGP

    if activation == "relu":
        return ArcCosineNNGP(depth=2, sigma_w2=2.0, sigma_b2=1.0)
    if activation == "erf":
        return ErfNNGP(depth=2, sigma_w2=2.0, sigma_b2=1.0)
    raise ValueError(f"activation={activation!r}: use 'relu' or 'erf'.")
