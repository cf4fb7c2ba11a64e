"""The one training loop, :func:`fit`: epochs of batches, any loss, any step rule.

Book: *Theory* (``book/theory.md``), sections "Model" (eqs. (model), (model-grad)),
"Training" and "Second-order steps"; *Derivations* for each loss; spec §4.

One step on a batch of B samples (spec §1, §4):

1. ``objective.views`` fresh augmented views (host RNG, :mod:`krepes_lib.augment`): two for
   the SSL losses, one un-augmented view for KPCA / KAE unless ``augment`` says otherwise;
2. a :class:`~krepes_lib.problem.BatchProblem`: the kernel block K = k([Xᵃ; Xᵇ], x̃) (one GEMM
   for all views, computed once per batch), F = K Ã + 1γᵀ, the loss's hand-derived gradient
   lifted by eq. (model-grad);
3. the step rule of ``options.optimizer`` (:mod:`krepes_lib.optim`: Adam, SGD, GGN-Newton-CG),
   optionally preconditioned (:mod:`krepes_lib.curvature`);
4. the loss's ``after_step`` (BYOL's EMA target).

The loop never names a loss: everything loss-specific is in its objective
(:mod:`krepes_lib.losses.objective`), including the arrays it owns (BYOL predictor and
target, KAE decoder), which live in ``History.state``.

Reproducibility, checks and checkpoints
---------------------------------------
Epoch e draws its shuffle and augmentations from ``numpy.random.default_rng([seed, e])``.
The loss is checked after every batch on the host (every epoch on a GPU): a NaN/inf loss, or
a loss that grows beyond ``DIVERGENCE_FACTOR`` × max(1, |first batch loss|), stops training
with :class:`FloatingPointError` naming the epoch, batch and learning rate. A checkpoint
(``np.savez`` to a temporary file, then ``os.replace``) holds the model, the loss's arrays,
the optimiser's state and the history after every epoch, and a **fingerprint** of what
defines the run: the model's coordinates (kernel, landmarks, h, coordinates), a hash of the
training data, the loss and its hyper-parameters, the options, batch size and seed. Resuming
a checkpoint with another fingerprint is refused with a message saying what differs.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
import types
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from .augment import auto_for_kernel
from .backend import asarray, is_device_array, synchronize, to_host
from .losses import make_objective
from .losses.objective import ObjectiveState
from .model import NystromModel
from .optim import make_optimizer
from .options import Options, resolve_options
from .problem import BatchProblem
from .views import resolve_augment

__all__ = ["fit", "History", "data_fingerprint", "DIVERGENCE_FACTOR"]

_CKPT_VERSION = 3

#: A batch loss beyond this factor times max(1, |first batch loss|) counts as divergence (ours).
DIVERGENCE_FACTOR = 1e6


@dataclass
class History:
    """What :func:`fit` logged, one entry per completed epoch, and the loss's own arrays.

    Attributes
    ----------
    epoch : list[int]       1-based epoch numbers.
    loss : list[float]      Mean batch objective of the epoch (before each step).
    probe : list[float]     ``eval_fn(model)`` after the epoch (NaN when not evaluated).
    time : list[float]      Wall seconds of the epoch's training (device synchronised).
    eval_time : list[float] Wall seconds of ``eval_fn``.
    state : ObjectiveState  The loss's arrays after training (BYOL predictor/target, KAE decoder).
    n_trained : int         Entries of every array the optimiser updated (main parameter, γ,
                            and the loss's trainable arrays) — what was actually trained.
    """

    epoch: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    probe: list = field(default_factory=list)
    time: list = field(default_factory=list)
    eval_time: list = field(default_factory=list)
    state: object = None
    n_trained: int = 0

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in ("epoch", "loss", "probe", "time", "eval_time")}

    def __len__(self):
        return len(self.epoch)


# --- inputs --------------------------------------------------------------------------------

def data_fingerprint(X) -> str:
    """SHA-256 of the training data (shape, dtype and bytes; host copy):
    :func:`krepes_lib.provenance.array_fingerprint` of X."""
    from .provenance import array_fingerprint

    return array_fingerprint(X)


def _check_inputs(model, X, epochs, batch_size, eval_every):
    if not isinstance(model, NystromModel):
        raise TypeError(f"model must be a krepes_lib.NystromModel, got {type(model).__name__}.")
    if int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs={epochs} must be a non-negative integer.")
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(f"batch_size={batch_size} must be an integer >= 2.")
    if int(eval_every) != eval_every or eval_every < 1:
        raise ValueError(f"eval_every={eval_every} must be a positive integer.")
    if is_device_array(X) and model.xp is np:
        raise TypeError("X is a CuPy (device) array but the model lives on the host (NumPy); "
                        "build the Nystrom basis from device landmarks, or pass to_host(X).")
    X = asarray(X, xp=model.xp, dtype=model.dtype, name="X")
    d = model.nystrom.landmarks.shape[1]
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (n, d={d}); got {tuple(X.shape)}.")
    if X.shape[0] < 2:
        raise ValueError(f"X has {X.shape[0]} row(s); training needs at least 2 (one batch of B >= 2).")
    return X


# --- checkpoints ------------------------------------------------------------------------------
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class _Unverifiable(Exception):
    """An object whose identity across processes cannot be fingerprinted."""


def _const_repr(c) -> str:
    """repr of a code constant that does not depend on the hash seed (frozensets sorted)."""
    if isinstance(c, types.CodeType):
        return _code_digest(c)
    if isinstance(c, (tuple, list)):
        return type(c).__name__ + "(" + ",".join(_const_repr(x) for x in c) + ")"
    if isinstance(c, (set, frozenset)):
        return type(c).__name__ + "{" + ",".join(sorted(_const_repr(x) for x in c)) + "}"
    return repr(c)


def _code_digest(code) -> str:
    """SHA-256 of what a code object computes: bytecode, constants, names (not line numbers)."""
    h = hashlib.sha256(code.co_code)
    h.update(_const_repr(code.co_consts).encode())
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_argcount,
                   code.co_kwonlyargcount)).encode())
    return h.hexdigest()[:16]


_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def _stable_repr(obj, depth: int = 0) -> str:
    """A fingerprint of ``obj`` that is the same in every process and differs when what it
    computes differs, for checkpoints (D5 of the second fault round).

    A function: module, qualified name, the digest of its code object, its defaults, the
    values of its closure cells and of the plain module globals it reads (so two closures of
    one factory, or two lambdas of one module, differ). A ``functools.partial``: its function,
    args and keywords. A method: its object and function. An object with a repr free of memory
    addresses (``TableAugmenter(corrupt_frac=0.3, noise_std=0.1)``): its class and repr; one
    with the default repr: its class, the code of its ``__call__`` and its attributes. Arrays by
    shape, dtype and SHA-256. Raises :class:`_Unverifiable` for anything else.
    """
    if depth > 8:
        raise _Unverifiable("it nests too deeply")
    rec = functools.partial(_stable_repr, depth=depth + 1)
    if isinstance(obj, _PLAIN):
        return repr(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj).__name__ + "(" + ",".join(rec(x) for x in obj) + ")"
    if isinstance(obj, dict):
        return "dict(" + ",".join(sorted(f"{rec(k)}:{rec(v)}" for k, v in obj.items())) + ")"
    if isinstance(obj, (set, frozenset)):
        return type(obj).__name__ + "{" + ",".join(sorted(rec(x) for x in obj)) + "}"
    if isinstance(obj, np.generic) or isinstance(obj, np.ndarray) or is_device_array(obj):
        from .provenance import array_fingerprint

        a = to_host(obj)
        return f"array({a.shape},{a.dtype.str},{array_fingerprint(a)[:16]})"
    if isinstance(obj, functools.partial):
        return f"partial({rec(obj.func)},args={rec(obj.args)},keywords={rec(obj.keywords)})"
    if isinstance(obj, types.FunctionType):
        cells = []
        for c in obj.__closure__ or ():
            try:
                cells.append(rec(c.cell_contents))
            except ValueError:  # an empty cell
                cells.append("<empty>")
        g = obj.__globals__
        glob = {n: g[n] for n in obj.__code__.co_names
                if n in g and isinstance(g[n], _PLAIN + (tuple, np.ndarray))}
        return (f"function({obj.__module__}.{obj.__qualname__},code={_code_digest(obj.__code__)},"
                f"defaults={rec(obj.__defaults__)},kwdefaults={rec(obj.__kwdefaults__)},"
                f"closure={rec(cells)},globals={rec(glob)})")
    if isinstance(obj, types.MethodType):
        return f"method({rec(obj.__self__)},{rec(obj.__func__)})"
    if isinstance(obj, (types.BuiltinFunctionType, type, types.ModuleType)):
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", ""))
        return f"{type(obj).__name__}({getattr(obj, '__module__', '')}.{name})"
    cls = f"{type(obj).__module__}.{type(obj).__qualname__}"
    r = repr(obj)
    if not _ADDRESS.search(r):
        return f"{cls}:{r}"
    attrs = getattr(obj, "__dict__", None)
    call = getattr(type(obj), "__call__", None)
    if attrs is None or not isinstance(call, types.FunctionType):
        raise _Unverifiable(f"a {cls} has no stable description (its repr shows a memory address)")
    return f"{cls}(call={_code_digest(call.__code__)},attrs={rec(dict(attrs))})"


def _augment_fingerprint(augment) -> str:
    """:func:`_stable_repr` of the augmentation, or ``"unverifiable: <why>"``."""
    try:
        return _stable_repr(augment)
    except (_Unverifiable, RecursionError) as err:
        return f"unverifiable: {err}"


def _config(model, objective, X, B, seed, opts, drop_last, augment):
    return json.dumps({
        "version": _CKPT_VERSION, "loss": repr(objective.loss), "model": model.fingerprint(),
        "data": data_fingerprint(X), "batch_size": int(B), "seed": int(seed),
        "options": repr(opts), "drop_last": bool(drop_last), "augment": _augment_fingerprint(augment),
        "keys": sorted(model.params),
    }, sort_keys=True)


def _save_checkpoint(path, epoch, config, model, state, opt, hist):
    from .files import atomic_path

    arrays = {"meta/epoch": np.asarray(epoch), "meta/config": np.asarray(config)}
    arrays.update({k: to_host(v) for k, v in model.state_dict().items()})
    arrays.update({k: to_host(v) for k, v in state.state_dict().items()})
    arrays.update({f"opt/{k}": to_host(v) for k, v in opt.state_dict().items()})
    arrays.update({f"hist/{k}": np.asarray(v, dtype=np.float64) for k, v in hist.as_dict().items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # the old checkpoint stays valid until the new one is complete


def _config_diff(saved: str, now: str) -> str:
    try:
        a, b = json.loads(saved), json.loads(now)
    except ValueError:
        return "the saved configuration is unreadable"
    names = {"model": "the model (kernel, landmarks, h or coordinates)", "data": "the training data",
             "augment": "the augmentation (another function, other closure values or arguments)",
             "version": "the checkpoint format"}
    return "; ".join(f"{names.get(k, k)} differs" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _load_checkpoint(path, config, model, state, opt) -> tuple[int, History]:
    import zipfile

    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"checkpoint {path!r} is unreadable ({type(err).__name__}: {err}); it may be "
                         "truncated. Delete it or pass resume=False.") from None
    with z:
        try:
            saved = str(z["meta/config"])
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as err:
            raise ValueError(f"checkpoint {path!r} is damaged ({type(err).__name__}: {err}). Delete it "
                             "or pass resume=False.") from None
        aug_saved = _json_field(saved, "augment")
        aug_now = _json_field(config, "augment")
        if aug_saved.startswith("unverifiable") or aug_now.startswith("unverifiable"):
            why = (aug_now if aug_now.startswith("unverifiable") else aug_saved)[len("unverifiable: "):]
            raise ValueError(
                f"checkpoint {path!r}: cannot verify the augmentation ({why}), so resuming might "
                "continue under another one. Pass resume=False, or a TableAugmenter, a plain "
                "function or a functools.partial of one as augment.")
        if saved != config:
            why = ("load parameters into the wrong coordinates"
                   if _json_field(saved, "model") != _json_field(config, "model")
                   else "splice the epochs of two different runs into one history")
            raise ValueError(
                f"checkpoint {path!r} belongs to another run: {_config_diff(saved, config)}. "
                f"Resuming it would {why}. Delete it, pass another checkpoint path, or resume=False.")
        try:  # every member is read in full, so zip's CRC-32 checks each one
            arrays = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise ValueError(f"checkpoint {path!r} is damaged ({type(err).__name__}: {err}); nothing "
                             "was loaded from it. Delete it or pass resume=False.") from None
    model.load_state_dict({k: v for k, v in arrays.items() if k.startswith("param/")})
    state.load_state_dict({k: v for k, v in arrays.items() if k.startswith(("aux/", "buffer/"))},
                          model.xp, model.dtype)
    opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt/")})
    hist = History(**{k[5:]: v.tolist() for k, v in arrays.items() if k.startswith("hist/")})
    hist.epoch = [int(e) for e in hist.epoch]
    return int(arrays["meta/epoch"]), hist


def _json_field(config: str, name: str) -> str:
    try:
        return str(json.loads(config).get(name, ""))
    except (ValueError, AttributeError):
        return ""


def _raise_diverged(values, epoch, n_batches, opts, scale):
    vals = np.asarray(values, dtype=np.float64)
    bad_mask = ~np.isfinite(vals) | (np.abs(vals) > DIVERGENCE_FACTOR * scale)
    bad = int(np.flatnonzero(bad_mask)[0])
    lr = opts.lr
    raise FloatingPointError(
        f"the training loss is {vals[bad]:.4g} at epoch {epoch}, batch {bad + 1}/{n_batches} "
        f"(first batch loss scale {scale:.4g}): the optimisation ({opts.optimizer}) diverged. "
        f"Lower the learning rate (lr={lr:g}; try lr={lr / 10:g}) or raise the damping, check the "
        "kernel bandwidth and the input scale. The last checkpoint (previous epoch) is intact.")


# --- fit -------------------------------------------------------------------------------------
def fit(model: NystromModel, X, loss, epochs: int = 1, batch_size: int = 256, *, seed: int = 0,
        augment="auto", options: Options | None = None, optimizer: str | None = None,
        lr: float | None = None, preconditioner=None, state: ObjectiveState | None = None,
        eval_fn: Callable | None = None, eval_every: int = 1, checkpoint: str | None = None,
        resume: bool = True, progress: bool = True, drop_last: bool = True) -> History:
    """Train ``model`` in place on X with any of the losses and step rules (spec §4).

    Parameters
    ----------
    model : NystromModel
        Trained in place (``model.params``).
    X : array (n, d)
        Training inputs; a NumPy X moves once to the model's device.
    loss : str, loss object or Objective
        Any of :data:`krepes_lib.losses.NAMES` (default hyper-parameters), a loss object
        (``krepes_lib.losses.get(name, **hyper)``) or an objective.
    epochs : int, default 1
        Total number of epochs (with ``resume``, the count to reach, not to add).
    batch_size : int, default 256
        B samples per batch (each seen in ``objective.views`` views); clipped to n.
    seed : int
        Seeds the per-epoch host RNG ``default_rng([seed, epoch])`` (shuffle, augmentations).
    augment : "auto", None, "table", image shape, Dataset or callable
        See :func:`krepes_lib.views.resolve_augment`.
    options : Options, optional
        Solver settings (optimizer, lr, damping, CG, memory budget); the keywords
        ``optimizer`` and ``lr`` override its fields.
    preconditioner : krepes_lib.curvature.Preconditioner, optional
        Applied to each batch gradient (Adam / SGD) or inside CG (Newton-CG).
    state : ObjectiveState, optional
        The loss's arrays to continue from (e.g. ``History.state`` of an earlier call);
        default: fresh from ``objective.init_state(model)``.
    eval_fn : callable ``model -> float``, optional
        Logged as ``History.probe`` every ``eval_every`` epochs and after the last one.
    checkpoint : path, optional
        Written atomically after every epoch; with ``resume=True`` an existing file of the
        same run is loaded first (another run's file is refused).
    progress : bool
        A tqdm bar over batches.
    drop_last : bool, default True
        Drop the last incomplete batch (the contrastive losses need full batches).

    Returns
    -------
    History

    Raises
    ------
    FloatingPointError
        When the loss becomes NaN/inf or diverges (see the module docstring).

    Examples
    --------
    >>> import numpy as np, krepes_lib as kr
    >>> X = np.random.default_rng(0).normal(size=(200, 4)).astype("float32")
    >>> model = kr.NystromModel(kr.Nystrom(kr.RBF(2.0), X[:30]), h=4)
    >>> hist = kr.fit(model, X, "barlow_twins", epochs=2, batch_size=64, progress=False)
    >>> len(hist)
    2
    """
    X = _check_inputs(model, X, epochs, batch_size, eval_every)
    objective = make_objective(loss)
    opts = resolve_options(options, optimizer=optimizer, lr=lr)
    aug = resolve_augment(auto_for_kernel(augment, model.nystrom.kernel), objective.views)
    state = objective.init_state(model) if state is None else state
    params = {**model.params, **state.params}
    opt = make_optimizer(params, opts, preconditioner)
    xp = model.xp
    n = int(X.shape[0])
    B = int(min(batch_size, n))
    n_batches = n // B if drop_last else -(-n // B)

    hist, start = History(), 0
    config = _config(model, objective, X, B, seed, opts, drop_last, aug) if checkpoint else None
    if config is not None and _json_field(config, "augment").startswith("unverifiable"):
        warnings.warn(f"fit: the augmentation {aug!r} cannot be fingerprinted "
                      f"({_json_field(config, 'augment')[len('unverifiable: '):]}), so the checkpoint "
                      f"{checkpoint!r} cannot be resumed; use a TableAugmenter, a plain function or a "
                      "functools.partial of one to make it resumable.", stacklevel=2)
    if checkpoint is not None and resume and os.path.exists(checkpoint):
        start, hist = _load_checkpoint(checkpoint, config, model, state, opt)
    hist.state = state
    hist.n_trained = int(sum(int(np.prod(v.shape)) for v in params.values()))

    from tqdm.auto import tqdm

    scale = None
    bar = tqdm(total=max(epochs - start, 0) * n_batches, disable=not progress, desc=f"fit {objective.name}",
               unit="batch", leave=False)
    try:
        for epoch in range(start, int(epochs)):
            rng = np.random.default_rng([int(seed), epoch])
            perm = rng.permutation(n)
            synchronize(xp)
            t0 = time.perf_counter()
            values = []
            for bi in range(n_batches):
                Xb = X[xp.asarray(perm[bi * B:(bi + 1) * B])]
                views = tuple(aug(Xb, rng) for _ in range(objective.views))
                problem = BatchProblem(model, objective, state, views, opts.memory_budget)
                val = opt.step(problem, params)
                objective.after_step(model, state)
                values.append(val)
                if xp is np:  # free on the host; on a GPU the check runs once per epoch
                    v = float(val)
                    scale = max(1.0, abs(v)) if scale is None else scale
                    if not np.isfinite(v) or abs(v) > DIVERGENCE_FACTOR * scale:
                        _raise_diverged([v], epoch + 1, n_batches, opts, scale)
                bar.update(1)
            vals = to_host(xp.stack([xp.asarray(v) for v in values])).astype(np.float64)
            synchronize(xp)
            t_train = time.perf_counter() - t0
            if scale is None and vals.size:
                scale = max(1.0, abs(float(vals[0])) if np.isfinite(vals[0]) else 1.0)
            if vals.size and not (np.isfinite(vals).all() and (np.abs(vals) <= DIVERGENCE_FACTOR * scale).all()):
                _raise_diverged(vals, epoch + 1, n_batches, opts, scale)
            probe, t_eval = float("nan"), 0.0
            if eval_fn is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                t1 = time.perf_counter()
                probe = float(eval_fn(model))
                t_eval = time.perf_counter() - t1
            hist.epoch.append(epoch + 1)
            hist.loss.append(float(vals.mean()) if vals.size else float("nan"))
            hist.probe.append(probe)
            hist.time.append(t_train)
            hist.eval_time.append(t_eval)
            post = {"epoch": epoch + 1, "loss": f"{hist.loss[-1]:.4g}"}
            if not np.isnan(probe):
                post["probe"] = f"{probe:.4f}"
            bar.set_postfix(post)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, epoch + 1, config, model, state, opt, hist)
    finally:
        bar.close()
    return hist
