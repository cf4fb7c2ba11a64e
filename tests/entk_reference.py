"""A test reference: the empirical NTK (eNTK) of a NumPy multilayer perceptron, written out per layer.

The library has one eNTK, :class:`krepes_lib.neural.TorchNTK` (any ``torch.nn.Module``). This
module is not part of it: it is the independent closed form the tests hold TorchNTK to
(``tests/test_neural_ntk.py``), itself checked against finite-difference Jacobians
(``tests/test_entk.py``). Book: *Theory* (``book/theory.md``), section "Empirical NTK",
equations (entk), (entk-layer) and (entk-rp); spec §5.

For a network g(x; θ) with O outputs the eNTK is, summed over outputs (the spec's
normalisation; ``output_reduction="mean"`` divides by O),

    k(x, x') = Σ_o ⟨∇_θ g_o(x), ∇_θ g_o(x')⟩.                               (entk)

For an MLP h_l = a_{l-1} W_lᵀ + b_l, a_l = φ(h_l), g = h_L, this is an exact per-layer
contraction of back-propagated signals δ_l^o = ∂g_o/∂h_l and activations a_{l-1}:

    k(x, x') = Σ_l (a_{l-1}(x)·a_{l-1}(x') + 1) Σ_o δ_l^o(x)·δ_l^o(x').     (entk-layer)

:class:`EmpiricalNTK` evaluates (entk-layer) for blocks of inputs (no Jacobian of size
dim θ is ever formed). :class:`RandomProjectionNTK` is the fallback for networks whose
per-layer signals would not fit: with Rademacher directions v_s (E[v vᵀ] = I),

    k(x, x') ≈ (1/S) Σ_s Σ_o (J(x) v_s)_o (J(x') v_s)_o,                    (entk-rp)

seed 002 eq. (20), with the Jacobian-vector products J v_s computed exactly by
forward-mode differentiation (not by finite differences). Both are checked in the tests
against an explicit Jacobian built by finite differences, and against each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from krepes_lib.backend import get_xp, host_rng, to_device
from krepes_lib.kernels import Kernel

__all__ = ["MLP", "EmpiricalNTK", "RandomProjectionNTK"]

_ACTIVATIONS = ("relu", "tanh", "identity")


def _act(xp, name, H):
    if name == "relu":
        return xp.maximum(H, 0.0), (H > 0).astype(H.dtype)
    if name == "tanh":
        T = xp.tanh(H)
        return T, 1.0 - T * T
    return H, xp.ones_like(H)


@dataclass(eq=False)
class MLP:
    """A plain MLP g(x) = W_L φ(… φ(W_1 x + b_1) …) + b_L (standard parametrisation).

    Attributes
    ----------
    weights : list of arrays, W_l of shape (n_l, n_{l-1})
    biases : list of arrays, b_l of shape (n_l,)
    activation : {"relu", "tanh", "identity"}
    """

    weights: list
    biases: list
    activation: str = "relu"

    def __post_init__(self):
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation={self.activation!r}; choose one of {_ACTIVATIONS}.")
        if len(self.weights) != len(self.biases) or not self.weights:
            raise ValueError("weights and biases must be non-empty lists of the same length (one per layer).")
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            if W.ndim != 2 or b.shape != (W.shape[0],):
                raise ValueError(f"layer {l}: W must be (n_out, n_in) and b (n_out,); got {W.shape}, {b.shape}.")
            if l and W.shape[1] != self.weights[l - 1].shape[0]:
                raise ValueError(f"layer {l}: W has {W.shape[1]} inputs but layer {l - 1} has "
                                 f"{self.weights[l - 1].shape[0]} outputs.")

    @classmethod
    def init(cls, sizes, seed=0, activation="relu", xp=np, dtype="float64"):
        """He-initialised MLP with layer widths ``sizes = [d, n_1, ..., O]`` (host RNG)."""
        rng = host_rng(seed)
        Ws, bs = [], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            Ws.append(to_device(rng.normal(size=(n_out, n_in)) * np.sqrt(2.0 / n_in), xp, dtype))
            bs.append(to_device(0.1 * rng.normal(size=n_out), xp, dtype))
        return cls(Ws, bs, activation)

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[0])

    @property
    def n_parameters(self) -> int:
        return int(sum(W.size + b.size for W, b in zip(self.weights, self.biases)))

    def forward(self, X, keep=False):
        """g(X), shape (b, O); with ``keep`` also the activations a_l and derivatives φ'(h_l)."""
        acts, derivs = [X], []
        A = X
        for l, (W, b) in enumerate(zip(self.weights, self.biases)):
            H = A @ W.T + b
            if l == len(self.weights) - 1:
                A = H
            else:
                A, D = _act(get_xp(X), self.activation, H)
                derivs.append(D)
                acts.append(A)
        return (A, acts, derivs) if keep else A

    def signals(self, X):
        """Activations a_{l-1} (b, n_{l-1}) and back-propagated δ_l (b, O, n_l) for every layer."""
        xp = get_xp(X)
        _, acts, derivs = self.forward(X, keep=True)
        L = len(self.weights)
        O = self.n_outputs
        deltas = [None] * L
        deltas[L - 1] = xp.broadcast_to(xp.eye(O, dtype=X.dtype), (X.shape[0], O, O))
        for l in range(L - 2, -1, -1):
            deltas[l] = (deltas[l + 1] @ self.weights[l + 1]) * derivs[l][:, None, :]
        return acts, deltas

    def jvp(self, X, tangents):
        """J(X) v for S parameter directions at once: returns (b, S, O).

        ``tangents`` is a list of (V_l, vb_l) with V_l of shape (S, n_l, n_{l-1}) and vb_l (S, n_l).
        Forward-mode: ḣ_l = ȧ_{l-1} W_lᵀ + a_{l-1} V_lᵀ + vb_l, ȧ_l = φ'(h_l) ⊙ ḣ_l.
        """
        xp = get_xp(X)
        A, Adot = X, None
        L = len(self.weights)
        for l, ((W, b), (V, vb)) in enumerate(zip(zip(self.weights, self.biases), tangents)):
            H = A @ W.T + b
            Hdot = xp.einsum("bi,soi->bso", A, V) + vb[None, :, :]
            if Adot is not None:
                Hdot = Hdot + Adot @ W.T
            if l == L - 1:
                return Hdot
            A, D = _act(xp, self.activation, H)
            Adot = Hdot * D[:, None, :]
        raise AssertionError("unreachable")


@dataclass(frozen=True, eq=False)
class EmpiricalNTK(Kernel):
    """Exact eNTK of an :class:`MLP`, eq. (entk-layer), computed block by block.

    Parameters
    ----------
    mlp : MLP
    output_reduction : {"sum", "mean"}
        Σ_o (spec §5, default) or the mean over the O outputs.
    """

    mlp: MLP = None
    output_reduction: str = "sum"
    name = "entk"

    def __post_init__(self):
        if not isinstance(self.mlp, MLP):
            raise ValueError("EmpiricalNTK needs mlp=MLP(...) (the network whose eNTK is taken).")
        if self.output_reduction not in ("sum", "mean"):
            raise ValueError(f"output_reduction={self.output_reduction!r}; use 'sum' or 'mean'.")

    def _scale(self):
        return 1.0 if self.output_reduction == "sum" else 1.0 / self.mlp.n_outputs

    def _block(self, xp, X, Y):
        aX, dX = self.mlp.signals(X)
        aY, dY = (aX, dX) if Y is X else self.mlp.signals(Y)
        K = xp.zeros((X.shape[0], Y.shape[0]), dtype=X.dtype)
        for a_x, a_y, d_x, d_y in zip(aX, aY, dX, dY):
            S = d_x.reshape(d_x.shape[0], -1) @ d_y.reshape(d_y.shape[0], -1).T
            K += (a_x @ a_y.T + 1.0) * S
        return K * self._scale()

    def _diag(self, xp, X):
        a, d = self.mlp.signals(X)
        out = xp.zeros(X.shape[0], dtype=X.dtype)
        for a_x, d_x in zip(a, d):
            out += (xp.einsum("ij,ij->i", a_x, a_x) + 1.0) * xp.einsum("ioj,ioj->i", d_x, d_x)
        return out * self._scale()


@dataclass(frozen=True, eq=False)
class RandomProjectionNTK(Kernel):
    """Random-projection eNTK estimate, eq. (entk-rp): unbiased, error O(1/√S).

    Parameters
    ----------
    mlp : MLP
    n_projections : int
        S, the number of Rademacher parameter directions (drawn once, on the host, from ``seed``).
    output_reduction : {"sum", "mean"}
    """

    mlp: MLP = None
    n_projections: int = 256
    seed: int = 0
    output_reduction: str = "sum"
    tangents: list = field(default=None, repr=False)
    name = "entk_rp"

    def __post_init__(self):
        if not isinstance(self.mlp, MLP):
            raise ValueError("RandomProjectionNTK needs mlp=MLP(...).")
        if int(self.n_projections) < 1:
            raise ValueError(f"n_projections={self.n_projections} must be a positive integer.")
        rng = host_rng(self.seed)
        xp = get_xp(self.mlp.weights[0])
        S = int(self.n_projections)
        tangents = []
        for W, b in zip(self.mlp.weights, self.mlp.biases):
            V = rng.choice([-1.0, 1.0], size=(S,) + W.shape)
            vb = rng.choice([-1.0, 1.0], size=(S,) + b.shape)
            tangents.append((to_device(V, xp, W.dtype), to_device(vb, xp, W.dtype)))
        object.__setattr__(self, "tangents", tangents)

    def features(self, X):
        """φ(X) of shape (b, S·O) with φ(x)·φ(x') the estimate of eq. (entk-rp)."""
        J = self.mlp.jvp(X, self.tangents)  # (b, S, O)
        scale = 1.0 / self.n_projections
        if self.output_reduction == "mean":
            scale /= self.mlp.n_outputs
        return J.reshape(J.shape[0], -1) * np.sqrt(scale)

    def _block(self, xp, X, Y):
        FX = self.features(X)
        FY = FX if Y is X else self.features(Y)
        return FX @ FY.T

    def _diag(self, xp, X):
        F = self.features(X)
        return xp.einsum("ij,ij->i", F, F)
