"""NeuralEF itself: the objective with its hand-derived gradient and the training loop (seed Alg. 1).

Book: *NeuralEF vs Nyström* (``book/neuralef.md``), eqs. (nef-loss), (nef-grad), (nef-R), (nef-mu).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ...backend import to_host
from ...kernels import Kernel
from ...timing import Timer
from .kernels import RandomFeatureKernel
from .networks import L2BatchNorm, _tdtype

__all__ = ["neuralef_objective", "neuralef_grad", "NeuralEF", "NeuralEFHistory", "batches", "eigenvalue_estimate"]


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


def batches(n: int, batch_size: int, iterations: int, seed: int = 0):
    """The row indices of NeuralEF's batches (seed Alg. 1): B = min(n, ``batch_size``) rows per
    step, drawn without replacement from seeded permutations (a new one when fewer than B rows
    are left). :meth:`NeuralEF.fit` and :func:`eigenvalue_estimate` draw the same batches."""
    rng = np.random.default_rng(seed)
    B = int(min(n, batch_size))
    perm, pos = rng.permutation(n), 0
    for _ in range(int(iterations)):
        if pos + B > n:
            perm, pos = rng.permutation(n), 0
        yield perm[pos:pos + B]
        pos += B


def eigenvalue_estimate(Psi, F, iterations: int, batch_size: int = 256, seed: int = 0, ema: float = 0.99,
                        div: float = 1.0, const: float = 0.0):
    """NeuralEF's eigenvalue estimator, eq. (nef-mu), applied to **given** eigenfunction values.

    Psi (n, k): the functions on the training rows; F (n, D): kernel features of the same rows,
    κ(x_a, x_b) = F_a·F_b / ``div`` + ``const``. Each of the ``iterations`` batches of
    :func:`batches` is L2-normalised as in training (eq. (nef-l2bn)), R̃_jj = ψ̂_jᵀK_bψ̂_j / B² (eq.
    (nef-R)) and μ̂ is their EMA. Applied to the exact eigenvectors (ψ_j(x_n) = √n u_nj) this is
    what the estimator reaches when the eigenfunctions are perfect — its floor: a batch of B rows
    carries the diagonal κ(x, x) with weight 1/B, which inflates small eigenvalues (expectation:
    eq. (nef-floor)). Returns μ̂ (k,).
    """
    Psi = np.asarray(Psi, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    if Psi.ndim != 2 or F.ndim != 2 or Psi.shape[0] != F.shape[0]:
        raise ValueError(f"eigenvalue_estimate: Psi {Psi.shape} and F {F.shape} must be (n, k) and (n, D), same n.")
    mu = None
    for idx in batches(Psi.shape[0], batch_size, iterations, seed):
        P = Psi[idx] / np.sqrt((Psi[idx] ** 2).mean(0))  # eq. (nef-l2bn), the batch σ
        FP = F[idx].T @ P
        r = ((FP * FP).sum(0) / div + const * P.sum(0) ** 2) / len(idx) ** 2  # R̃_jj, eq. (nef-R)
        mu = r if mu is None else ema * mu + (1 - ema) * r  # eq. (nef-mu)
    return mu


def _is_torch_ntk(kernel) -> bool:
    from ...neural.ntk import TorchNTK  # torch is already imported by this study

    return isinstance(kernel, TorchNTK)


@dataclass
class NeuralEFHistory:
    loss: list = field(default_factory=list)
    eigenvalues: list = field(default_factory=list)
    seconds: float = 0.0
    kernel_seconds: float = 0.0
    cpu_seconds: float = 0.0
    iterations: int = 0


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
        torch.manual_seed(int(seed))
        Xt = torch.as_tensor(Xh, dtype=self.dtype)
        timer = Timer()
        F, div, const = None, 1.0, 0.0
        with timer("features"):
            if precompute_features and isinstance(kernel, RandomFeatureKernel):
                F = torch.as_tensor(kernel.features(Xh), dtype=self.dtype)
                div, const = float(kernel.n_samples), float(kernel.const)
            elif precompute_features and _is_torch_ntk(kernel):  # φ(X)φ(Y)ᵀ = K (krepes_lib.neural.ntk)
                F = torch.as_tensor(np.asarray(to_host(kernel.features(Xh))), dtype=self.dtype)
        params = list(self.net.parameters())
        opt = torch.optim.Adam(params, lr=self.lr)
        mu = None
        with timer("steps"):
            bar = tqdm(range(int(iterations)), desc="NeuralEF", disable=not progress, leave=False)
            for it, idx in zip(bar, batches(n, batch_size, iterations, seed)):
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
        self.history.kernel_seconds += timer.get("features")
        self.history.seconds += timer.total
        self.history.cpu_seconds += timer.cpu_total
        self.history.iterations += int(iterations)
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
