"""First-order training of a :class:`~krepes_lib.model.NystromModel`: Adam over epochs.

Book: *Theory* (``book/theory.md``), sections "Model" (eqs. (model), (model-grad)) and
"Training"; *Derivations* (``book/derivations.md``) for each loss; spec §4.

One step on a batch of B samples (spec §1, §4):

1. two fresh augmented views Xᵃ, Xᵇ (host RNG, :mod:`krepes_lib.augment`);
2. the kernel block K = k([Xᵃ; Xᵇ], x̃) of shape (2B, m) — one GEMM for both views,
   computed for this batch only (nothing n×m is kept; a block larger than
   ``memory_budget`` is streamed in row chunks and recomputed for the backward pass);
3. F = K Ã + 1γᵀ, eq. (model), split into Zᵃ, Zᵇ;
4. the loss's hand-derived ``value_and_grad`` gives ∇_Z L;
5. ∇_Ã L = Kᵀ ∇_F L (+ direct terms), ∇_γ L = 1ᵀ ∇_F L, eq. (model-grad), mapped to W in
   whitened coordinates;
6. an Adam step on every trainable array (hyper-parameters from
   :data:`krepes_lib.defaults.ADAM`), then the BYOL target EMA.

Loss-specific paths
-------------------
* two-view losses (``barlow_twins``, ``vicreg``, ``simclr``, ``spectral_contrastive``,
  ``simple_contrastive``): ``loss.value_and_grad(Za, Zb) -> (L, (dZa, dZb))``;
* a loss with a field ``rkhs_penalty`` = λ > 0 (simple contrastive): the model adds
  λ tr(ÃᵀK_mmÃ) to the objective and 2λ K_mm Ã to ∇_Ã L;
* ``byol``: ``value_and_grad(Za, Zb, Ta, Tb, P) -> (L, (dZa, dZb, dP))`` with the target
  embeddings T = K Ã_ξ + 1γ_ξᵀ (stop-gradient); P trained jointly; after each step
  (Ã_ξ, γ_ξ) ← τ(Ã_ξ, γ_ξ) + (1 − τ)(Ã, γ), τ = the loss's ``ema`` field or
  ``LOSS_HYPER["byol"]["ema"]``;
* single-view ``kpca`` (``value_and_grad(F, A_tilde, K_mm) -> (L, (dF, dA_direct))``)
  and ``kae`` (``value_and_grad(Z, K_bm, k_diag, B_dec, K_mm) -> (L, (dZ, dB_dec))``,
  decoder trained jointly): one view per batch, un-augmented unless ``augment`` is given.

Reproducibility and checkpoints
-------------------------------
Epoch e draws its shuffle and its augmentations from ``numpy.random.default_rng([seed, e])``,
so the random stream of an epoch does not depend on what ran before. A checkpoint
(``np.savez`` to a temporary file, then ``os.replace``: never a half-written file) holds
the model state, Adam's moments and step count, and the history after every epoch;
``resume=True`` continues from the saved epoch and gives the same result as an
uninterrupted run (tested bitwise on NumPy).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .augment import TableAugmenter, identity, make_augmenter
from .backend import asarray, get_xp, is_device_array, synchronize, to_device, to_host
from .defaults import ADAM, BLOCK_BYTES, LOSS_HYPER
from .kernels import block_rows
from .model import NystromModel

__all__ = ["fit", "History", "Adam", "SGD", "SINGLE_VIEW", "train_step"]

#: Losses that see one view per batch.
SINGLE_VIEW = ("kpca", "kae")

_CKPT_VERSION = 1


# --- optimisers ------------------------------------------------------------------------
class Adam:
    """Adam (Kingma & Ba) written in the arrays' namespace, PyTorch's update rule.

    m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε).

    Parameters
    ----------
    params : dict[str, array]
        The arrays to update (in place).
    lr, betas, eps : optional
        Default: :data:`krepes_lib.defaults.ADAM` (lr 1e-3, β = (0.9, 0.999), ε = 1e-8).
    """

    name = "adam"

    def __init__(self, params: dict, lr: float | None = None, betas=None, eps: float | None = None):
        self.lr = float(ADAM["lr"] if lr is None else lr)
        self.betas = tuple(float(b) for b in (ADAM["betas"] if betas is None else betas))
        self.eps = float(ADAM["eps"] if eps is None else eps)
        if not self.lr > 0 or not all(0 <= b < 1 for b in self.betas) or not self.eps > 0:
            raise ValueError(f"Adam: need lr > 0, 0 <= betas < 1, eps > 0; got lr={self.lr}, "
                             f"betas={self.betas}, eps={self.eps}.")
        self.t = 0
        self.m = {k: _zeros_like(v) for k, v in params.items()}
        self.v = {k: _zeros_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict):
        """One update of every array in ``grads`` (same names as ``params``)."""
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1.0 - b1**self.t)
        root_bc2 = np.sqrt(1.0 - b2**self.t)
        for k, g in grads.items():
            m, v, p = self.m[k], self.v[k], params[k]
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            xp = get_xp(p)
            denom = xp.sqrt(v)
            denom /= root_bc2
            denom += self.eps
            p -= step_size * (m / denom)

    def state_dict(self) -> dict:
        out = {"t": np.asarray(self.t)}
        out.update({f"m/{k}": a for k, a in self.m.items()})
        out.update({f"v/{k}": a for k, a in self.v.items()})
        return out

    def load_state_dict(self, state: dict):
        self.t = int(state["t"])
        for name, store in (("m", self.m), ("v", self.v)):
            for k, cur in store.items():
                cur[...] = to_device(state[f"{name}/{k}"], get_xp(cur), dtype=cur.dtype)


class SGD:
    """Plain gradient descent θ ← θ − lr·g (a baseline; lr default as Adam's)."""

    name = "sgd"

    def __init__(self, params: dict, lr: float | None = None):
        self.lr = float(ADAM["lr"] if lr is None else lr)
        self.t = 0

    def step(self, params: dict, grads: dict):
        self.t += 1
        for k, g in grads.items():
            params[k] -= self.lr * g

    def state_dict(self) -> dict:
        return {"t": np.asarray(self.t)}

    def load_state_dict(self, state: dict):
        self.t = int(state["t"])


def _zeros_like(a):
    return get_xp(a).zeros_like(a)


# --- history ---------------------------------------------------------------------------
@dataclass
class History:
    """What :func:`fit` logged, one entry per completed epoch.

    Attributes
    ----------
    epoch : list[int]       1-based epoch numbers.
    loss : list[float]      Mean training objective over the epoch's batches (loss on Z plus
                            the RKHS penalty where there is one).
    probe : list[float]     ``eval_fn(model)`` after the epoch (NaN when not evaluated).
    time : list[float]      Wall seconds of the epoch's training (device synchronised).
    eval_time : list[float] Wall seconds of ``eval_fn``.
    """

    epoch: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    probe: list = field(default_factory=list)
    time: list = field(default_factory=list)
    eval_time: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def __len__(self):
        return len(self.epoch)


# --- per-batch kernel block ------------------------------------------------------------
class _BatchKernel:
    """K = k(X_batch, x̃) for one batch: kept whole when it fits ``memory_budget``,
    otherwise streamed in row chunks for the forward pass and recomputed for the backward."""

    def __init__(self, model: NystromModel, Xb, memory_budget: int):
        self.model = model
        self.kernel = model.nystrom.kernel
        self.L = model.nystrom.landmarks
        self.X = Xb
        self.rows = block_rows(Xb.shape[0], self.L.shape[0], Xb.shape[1], Xb.dtype.itemsize,
                               memory_budget)
        self.K = None
        if self.rows >= Xb.shape[0]:
            # blocks() skips the finiteness check of kernel(): X was validated once in fit
            # (a check here would cost a device synchronisation per batch).
            (_, self.K), = self.kernel.blocks(Xb, self.L, rows=Xb.shape[0])

    def _chunks(self):
        return self.kernel.blocks(self.X, self.L, rows=self.rows)

    def whole(self, why: str):
        if self.K is None:
            raise MemoryError(
                f"{why} needs the whole (b={self.X.shape[0]}, m={self.L.shape[0]}) kernel block, "
                "which exceeds memory_budget; raise memory_budget or lower batch_size."
            )
        return self.K

    def forward(self, A_tilde, gamma=None):
        if self.K is not None:
            return self.model.forward(self.K, A_tilde=A_tilde, gamma=gamma)
        xp = get_xp(self.X)
        return xp.concatenate([self.model.forward(K, A_tilde=A_tilde, gamma=gamma)
                               for _, K in self._chunks()])

    def backward(self, dF, dA_extra=None):
        if self.K is not None:
            return self.model.backward(self.K, dF, dA_extra)
        total = None
        for sl, K in self._chunks():
            g = self.model.backward(K, dF[sl], dA_extra if total is None else None)
            if total is None:
                total = g
            else:
                for k in total:
                    total[k] += g[k]
        return total


# --- one step ------------------------------------------------------------------------
def _loss_kind(loss) -> str:
    name = getattr(loss, "name", None)
    if name in SINGLE_VIEW or name == "byol":
        return name
    return "two_view"


def train_step(model: NystromModel, loss, views, memory_budget: int = BLOCK_BYTES):
    """Objective value and gradients of every trainable array for one batch.

    Parameters
    ----------
    model : NystromModel
    loss : loss object (see the module docstring for the contracts)
    views : tuple of arrays (B, d)
        ``(Xa, Xb)`` for two-view losses and BYOL, ``(X,)`` for KPCA / KAE.
    memory_budget : int
        Bytes allowed for one kernel block.

    Returns
    -------
    value : 0-d array
        The loss on Z plus the model's RKHS penalty where the loss asks for one.
    grads : dict[str, array]
        Same names and shapes as ``model.params``; eq. (model-grad).
    """
    xp = model.xp
    kind = _loss_kind(loss)
    A = model.A_tilde
    K_mm = model.nystrom.K_mm
    extra = {}
    dA_extra = None
    if kind in SINGLE_VIEW:
        (Xv,) = views
        kb = _BatchKernel(model, Xv, memory_budget)
        F = kb.forward(A)
        if kind == "kpca":
            val, (dF, dA_extra) = loss.value_and_grad(F, A, K_mm)
        else:
            if "B_dec" not in model.params:
                raise ValueError("loss 'kae' trains a decoder B: build the model with decoder=True.")
            K = kb.whole("the KAE loss")
            k_diag = model.nystrom.kernel.diag(Xv, dtype=model.dtype)
            val, (dF, dB) = loss.value_and_grad(F, K, k_diag, model.params["B_dec"], K_mm)
            extra["B_dec"] = dB
    else:
        Xa, Xb = views
        B = Xa.shape[0]
        kb = _BatchKernel(model, xp.concatenate([Xa, Xb]), memory_budget)
        F = kb.forward(A)
        Za, Zb = F[:B], F[B:]
        if kind == "byol":
            if model.target is None:
                raise ValueError("loss 'byol' needs a predictor and a target: build the model "
                                 "with predictor=True.")
            T = kb.forward(model.target["A_tilde"], model.target["gamma"])
            val, (dZa, dZb, dP) = loss.value_and_grad(Za, Zb, T[:B], T[B:], model.params["P"])
            extra["P"] = dP
        else:
            val, (dZa, dZb) = loss.value_and_grad(Za, Zb)
        dF = xp.concatenate([dZa, dZb])
    lam = float(getattr(loss, "rkhs_penalty", 0.0) or 0.0)
    if lam > 0:
        KA = K_mm @ A
        val = val + lam * (A * KA).sum()          # λ tr(ÃᵀK_mmÃ)
        pen = (2.0 * lam) * KA                    # its gradient 2λ K_mm Ã
        dA_extra = pen if dA_extra is None else dA_extra + pen
    grads = kb.backward(dF.astype(model.dtype, copy=False), dA_extra)
    grads.update(extra)
    return val, grads


# --- fit -------------------------------------------------------------------------------
def _resolve_loss(loss):
    if isinstance(loss, str):
        from . import losses

        return losses.get(loss)
    if not hasattr(loss, "value_and_grad"):
        raise TypeError(f"loss must be a name or an object with value_and_grad; got {type(loss).__name__}.")
    return loss


def _resolve_augment(augment, kind):
    if augment == "auto":
        return identity if kind in SINGLE_VIEW else TableAugmenter()
    if augment is None:
        return identity
    if callable(augment):
        return augment
    return make_augmenter(augment)


def _make_optimizer(optimizer, params, lr, betas):
    if optimizer == "adam":
        return Adam(params, lr=lr, betas=betas)
    if optimizer == "sgd":
        return SGD(params, lr=lr)
    if hasattr(optimizer, "step"):
        return optimizer
    raise ValueError(f"optimizer={optimizer!r}: use 'adam', 'sgd' or an object with step(params, grads).")


def _config(model, loss, X, batch_size, seed, opt, drop_last):
    return json.dumps({
        "version": _CKPT_VERSION, "loss": getattr(loss, "name", type(loss).__name__),
        "n": int(X.shape[0]), "d": int(X.shape[1]), "m": model.m, "h": model.h,
        "coords": model.coords, "params": sorted(model.params), "batch_size": int(batch_size),
        "seed": int(seed), "optimizer": getattr(opt, "name", type(opt).__name__),
        "lr": getattr(opt, "lr", None), "drop_last": bool(drop_last),
    }, sort_keys=True)


def _save_checkpoint(path, epoch, config, model, opt, hist):
    arrays = {"meta/epoch": np.asarray(epoch), "meta/config": np.asarray(config)}
    arrays.update({k: to_host(v) for k, v in model.state_dict().items()})
    if hasattr(opt, "state_dict"):
        arrays.update({f"opt/{k}": to_host(v) for k, v in opt.state_dict().items()})
    arrays.update({f"hist/{k}": np.asarray(v, dtype=np.float64) for k, v in hist.as_dict().items()})
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)  # atomic: the old checkpoint stays valid until the new one is complete


def _load_checkpoint(path, config, model, opt) -> tuple[int, History]:
    with np.load(path, allow_pickle=False) as z:
        saved = str(z["meta/config"])
        if saved != config:
            raise ValueError(
                f"checkpoint {path!r} was written by a different run configuration:\n  saved: {saved}\n"
                f"  now:   {config}\ndelete it, pass another checkpoint path, or resume=False."
            )
        model.load_state_dict({k: z[k] for k in z.files if k.startswith(("param/", "target/"))})
        if hasattr(opt, "load_state_dict"):
            opt.load_state_dict({k[4:]: z[k] for k in z.files if k.startswith("opt/")})
        hist = History(**{k[5:]: z[k].tolist() for k in z.files if k.startswith("hist/")})
        hist.epoch = [int(e) for e in hist.epoch]
        return int(z["meta/epoch"]), hist


def _raise_non_finite(values, epoch, first_batch, n_batches, lr):
    bad = int(np.flatnonzero(~np.isfinite(values))[0])
    raise FloatingPointError(
        f"the training loss is {values[bad]} at epoch {epoch}, batch {first_batch + bad + 1}/{n_batches}: "
        f"the optimisation diverged. Lower the learning rate (lr={lr}; try lr={lr / 10:g}), check the "
        "kernel bandwidth and the input scale. The last checkpoint (previous epoch) is intact."
    )


def fit(model: NystromModel, X, loss, epochs: int, batch_size: int, seed: int = 0,
        optimizer="adam", lr: float | None = None, betas=None, augment="auto",
        eval_fn: Callable | None = None, eval_every: int = 1, checkpoint: str | None = None,
        resume: bool = True, progress: bool = True, memory_budget: int = BLOCK_BYTES,
        drop_last: bool = True, grad_transform: Callable | None = None) -> History:
    """Train ``model`` in place with mini-batch first-order steps (spec §4).

    Parameters
    ----------
    model : NystromModel
        Trained in place (``model.params``; the BYOL target too).
    X : array (n, d)
        Training inputs. A NumPy X is moved once to the model's device (CuPy) when the
        model lives there; a CuPy X with a NumPy model is an error.
    loss : str or loss object
        A name for :func:`krepes_lib.losses.get` (default hyper-parameters) or an object
        with ``value_and_grad`` (see the module docstring for the contracts).
    epochs : int
        Total number of epochs (with ``resume``, the count to reach, not to add).
    batch_size : int
        B samples per batch (each seen in ``defaults.VIEWS`` = 2 views); clipped to n.
    seed : int
        Seeds the per-epoch host RNG ``default_rng([seed, epoch])`` (shuffle, augmentations).
    optimizer : {"adam", "sgd"} or object, default "adam"
        An object needs ``step(params, grads)`` (and ``state_dict``/``load_state_dict`` for
        checkpoints).
    lr, betas : optional
        Default :data:`krepes_lib.defaults.ADAM`.
    augment : "auto", None, callable, Dataset or image shape
        ``"auto"``: :class:`~krepes_lib.augment.TableAugmenter` for two-view losses and BYOL,
        none for KPCA/KAE; ``None``: no augmentation (both views equal the batch);
        a callable ``(X_batch, rng) -> X_view``; anything else goes to
        :func:`~krepes_lib.augment.make_augmenter` (pass the Dataset for images).
    eval_fn : callable ``model -> float``, optional
        E.g. a linear probe; its value is logged as ``History.probe``.
    eval_every : int, default 1
        Evaluate after every ``eval_every``-th epoch and after the last one.
    checkpoint : path, optional
        Saved after every epoch (atomically). With ``resume=True`` an existing file is loaded
        first and training continues from its epoch; its configuration must match.
    progress : bool
        Show a tqdm bar over batches.
    memory_budget : int
        Bytes allowed for one kernel block (the (2B, m) block of a batch is streamed in row
        chunks when it does not fit).
    drop_last : bool, default True
        Drop the last incomplete batch (the contrastive losses need full batches).
    grad_transform : callable ``(model, loss, views, grads) -> grads``, optional
        Applied to each batch's gradients before the optimiser step: preconditioned Adam
        (:class:`krepes_lib.ggn.FalkonGradTransform`, :class:`krepes_lib.ggn.GGNGradTransform`).

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        When the loss becomes NaN/inf; the message names the epoch and batch and suggests a
        lower learning rate.
    """
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs={epochs} must be a non-negative integer.")
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(f"batch_size={batch_size} must be an integer >= 2.")
    if int(eval_every) != eval_every or eval_every < 1:
        raise ValueError(f"eval_every={eval_every} must be a positive integer.")
    xp = model.xp
    if is_device_array(X) and xp is np:
        raise TypeError("X is a CuPy (device) array but the model lives on the host (NumPy); "
                        "build the Nystrom basis from device landmarks, or pass to_host(X).")
    X = asarray(X, xp=xp, dtype=model.dtype, name="X")
    if X.ndim != 2 or X.shape[1] != model.nystrom.landmarks.shape[1]:
        raise ValueError(f"X must have shape (n, d={model.nystrom.landmarks.shape[1]}); got {tuple(X.shape)}.")
    loss = _resolve_loss(loss)
    kind = _loss_kind(loss)
    aug = _resolve_augment(augment, kind)
    params = model.parameters()
    opt = _make_optimizer(optimizer, params, lr, betas)
    ema = getattr(loss, "ema", LOSS_HYPER["byol"]["ema"])

    n = int(X.shape[0])
    B = int(min(batch_size, n))
    n_batches = n // B if drop_last else -(-n // B)
    config = _config(model, loss, X, B, seed, opt, drop_last)

    hist, start = History(), 0
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        start, hist = _load_checkpoint(checkpoint, config, model, opt)

    lr_now = getattr(opt, "lr", None)
    from tqdm.auto import tqdm

    bar = tqdm(total=max(epochs - start, 0) * n_batches, disable=not progress, desc="fit",
               unit="batch", leave=False)
    try:
        for epoch in range(start, int(epochs)):
            rng = np.random.default_rng([int(seed), epoch])
            perm = rng.permutation(n)
            synchronize(xp)
            t0 = time.perf_counter()
            values = []
            for bi in range(n_batches):
                idx = xp.asarray(perm[bi * B:(bi + 1) * B])
                Xb = X[idx]
                if kind in SINGLE_VIEW:
                    views = (aug(Xb, rng),)
                else:
                    views = (aug(Xb, rng), aug(Xb, rng))
                val, grads = train_step(model, loss, views, memory_budget)
                values.append(val)
                if xp is np and not np.isfinite(val):  # free on the host; on a GPU: per epoch
                    _raise_non_finite(np.asarray([float(val)]), epoch + 1, bi, n_batches, lr_now)
                if grad_transform is not None:
                    grads = grad_transform(model, loss, views, grads)
                opt.step(params, grads)
                if kind == "byol":
                    model.update_target(ema)
                bar.update(1)
            vals = to_host(xp.stack([xp.asarray(v) for v in values])).astype(np.float64)
            synchronize(xp)
            t_train = time.perf_counter() - t0
            if not np.isfinite(vals).all():
                _raise_non_finite(vals, epoch + 1, 0, n_batches, lr_now)
            probe, t_eval = float("nan"), 0.0
            if eval_fn is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                t1 = time.perf_counter()
                probe = float(eval_fn(model))
                t_eval = time.perf_counter() - t1
            hist.epoch.append(epoch + 1)
            hist.loss.append(float(vals.mean()))
            hist.probe.append(probe)
            hist.time.append(t_train)
            hist.eval_time.append(t_eval)
            post = {"epoch": epoch + 1, "loss": f"{hist.loss[-1]:.4g}"}
            if not np.isnan(probe):
                post["probe"] = f"{probe:.4f}"
            bar.set_postfix(post)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, epoch + 1, config, model, opt, hist)
    finally:
        bar.close()
    return hist
