"""Train SSL networks with the library's own losses; cache them on disk; probe them.

Book: *The empirical NTK of a network* (``book/entk.md``), section "Networks trained here";
*Derivations* for every loss and its gradient.

One source of truth for the losses: :class:`SSLLossFunction` is a ``torch.autograd.Function``
whose forward calls ``krepes_lib.losses.get(name).value_and_grad`` on the detached
embeddings (NumPy on a CPU, CuPy through DLPack on a GPU) and whose backward returns that
hand-derived gradient (the equations of *Derivations*, e.g. (bt-grad), (byol-grad)) times
the incoming scalar. No torch transcription of a loss exists anywhere; the tests check the
Function with ``torch.autograd.gradcheck`` (float64 finite differences of the library value).

BYOL (eq. (byol-loss)): the linear predictor P (h × h, initialised to I as in the kernel
model's ``BYOLObjective``) is a torch parameter passed into the Function, which returns the
library's dP; the targets T are the embeddings of an EMA copy of the network (no gradient),
updated after each step with the loss's ``ema`` rate.

Training (:func:`train_ssl`) is seeded and deterministic on a CPU: weights from
``torch.manual_seed(seed)``, batches and augmentations from a host generator per epoch
(``numpy.random.default_rng([seed, epoch])``), views made by :func:`krepes_lib.augment.
make_augmenter` on host arrays (the same views as the kernel experiments), and
``torch.use_deterministic_algorithms(True)`` for the run.

The weight cache
----------------
:func:`load_or_train` stores trained weights under ``$KREPES_CACHE/networks`` (default
``~/.cache/krepes/networks``; a relative ``KREPES_CACHE`` means relative to the working
directory) and reuses them across notebooks (``force=True`` retrains). A file is keyed by
the network's :class:`~krepes_lib.provenance.Provenance` (:func:`provenance`): the training
code (:func:`code_hash`), **the rows it is trained and probed on** (the SHA-256 of X, y,
X_test, y_test — so a loader fix or another file behind the same dataset name, such as the
full CoverType file in place of the offline subset, trains a new network), the versions of
torch and NumPy, and the configuration with the loss's hyper-parameters. Each file carries a
SHA-256 of its weights and history, checked on load: a damaged, truncated or empty file is
reported (:class:`~krepes_lib.provenance.CacheWarning` naming the file) and the network is
trained again and the file replaced. Files are written to a temporary file and renamed. One
process trains a given network at a time (an ``fcntl`` lock ``.NAME.pt.lock`` beside it; the
others wait, then load its file). An unwritable cache is detected before training: the
network is trained, returned and not stored, with a warning naming ``KREPES_CACHE``; a failed
write after training (disk full) warns the same way and still returns the network.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..augment import make_augmenter
from ..backend import is_device_array
from ..profiles import network_profiles
from ..provenance import CacheWarning, Provenance, array_fingerprint, cache_root
from ._torch import require_torch, torch_dtype

torch = require_torch()

__all__ = ["SSLLossFunction", "ssl_loss", "SSLConfig", "TrainedNetwork", "train_ssl", "load_or_train", "initial_network",
           "probe_table",
           "probe_trained_vs_init", "cache_dir", "cache_key", "provenance", "PROFILES", "SSL_LOSSES"]

#: The SSL losses a network can be trained with here (two-view losses + BYOL).
SSL_LOSSES = ("barlow_twins", "simclr", "vicreg", "byol", "spectral_contrastive")

#: Training sizes per profile (this project's choices; see the book page), read from the
#: ``networks:`` section of ``krepes_lib/experiments.yml``, where every profile lives.
PROFILES = network_profiles()


# ------------------------------------------------------------------------------------
# The library's losses as an autograd Function
# ------------------------------------------------------------------------------------
def _to_array(t):
    """A detached tensor as NumPy (CPU) or CuPy (CUDA, DLPack; no copy to the host)."""
    t = t.detach()
    if t.is_cuda:
        import cupy

        return cupy.from_dlpack(t.contiguous())
    return t.contiguous().numpy()


def _to_torch(a, like):
    if is_device_array(a):
        return torch.from_dlpack(a).to(dtype=like.dtype)
    return torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)


class SSLLossFunction(torch.autograd.Function):
    """L = loss.value(*arrays) forward; the library's hand-derived gradient backward.

    ``apply(loss, Za, Zb)`` for a two-view loss; ``apply(loss, Za, Zb, P, Ta, Tb)`` for BYOL
    (gradients for Za, Zb and P; the targets Ta, Tb get none).
    """

    @staticmethod
    def forward(ctx, loss, Za, Zb, P=None, Ta=None, Tb=None):
        if loss.name == "byol":
            if P is None or Ta is None or Tb is None:
                raise ValueError("byol needs the predictor P and the targets Ta, Tb.")
            val, (dZa, dZb, dP) = loss.value_and_grad(_to_array(Za), _to_array(Zb), _to_array(Ta),
                                                       _to_array(Tb), _to_array(P))
            grads = (dZa, dZb, dP)
        else:
            val, grads = loss.value_and_grad(_to_array(Za), _to_array(Zb))
        ctx.save_for_backward(*[_to_torch(g, Za) for g in grads])
        return _to_torch(val, Za).reshape(())

    @staticmethod
    def backward(ctx, g_out):
        grads = [g_out * g for g in ctx.saved_tensors]
        if len(grads) == 3:
            return None, grads[0], grads[1], grads[2], None, None
        return None, grads[0], grads[1], None, None, None


def ssl_loss(loss, Za, Zb, P=None, Ta=None, Tb=None):
    """The library loss ``loss`` (name or loss object) on torch embeddings, differentiable."""
    from .. import losses

    if isinstance(loss, str):
        loss = losses.get(loss)
    if loss.name not in SSL_LOSSES:
        raise ValueError(f"loss {loss.name!r} cannot train a network here; choose one of {SSL_LOSSES}.")
    return SSLLossFunction.apply(loss, Za, Zb, P, Ta, Tb)


# ------------------------------------------------------------------------------------
# Configuration, cache key, training
# ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SSLConfig:
    """Everything that defines a trained network (the cache key is built from all of it).

    ``n_train``/``n_test``/``data_seed`` choose the rows (:func:`krepes_lib.data.load_split`);
    ``augment`` overrides :func:`krepes_lib.augment.make_augmenter` defaults; ``loss_hyper``
    overrides the loss's hyper-parameters (defaults: :data:`krepes_lib.defaults.LOSS_HYPER`).
    """

    dataset: str
    loss: str
    arch: str = "auto"
    size: str = "quick"
    n_train: int | None = 2000
    n_test: int | None = 1000
    data_seed: int = 0
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-6
    seed: int = 0
    augment: dict = field(default_factory=dict)
    loss_hyper: dict = field(default_factory=dict)
    dtype: str = "float32"

    def __post_init__(self):
        if self.loss not in SSL_LOSSES:
            raise ValueError(f"loss={self.loss!r}; choose one of {SSL_LOSSES}.")
        if self.arch not in ("auto", "mlp", "cnn"):
            raise ValueError(f"arch={self.arch!r}; use 'auto', 'mlp' or 'cnn'.")
        for nm in ("epochs", "batch_size"):
            v = getattr(self, nm)
            if int(v) != v or v < 1:
                raise ValueError(f"{nm}={v} must be a positive integer.")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}: the SSL losses need batches of >= 2 rows.")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr} must be > 0.")

    @classmethod
    def for_profile(cls, dataset: str, loss: str, profile: str = "quick", **overrides):
        """The configuration of ``profile`` (:data:`PROFILES`) with ``overrides``; a field given
        per architecture (``epochs``, ``lr``: {mlp, cnn}) takes the value of the network the
        data set gets (a CNN for images, an MLP for tables; ``overrides["arch"]`` when given)."""
        from ..profiles import resolve_arch

        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r}; choose one of {sorted(PROFILES)}.")
        prof = dict(PROFILES[profile])
        if any(isinstance(v, dict) for v in prof.values()):
            arch = overrides.get("arch", "auto")
            if arch == "auto":  # the rows say whether the data are images (loaded once per process)
                kw = {**prof, **overrides}
                image_shape = _split(dataset, kw.get("n_train"), kw.get("n_test"), kw.get("data_seed", 0),
                                     kw.get("dtype", "float32"))[4]
                arch = "cnn" if image_shape else "mlp"
            prof = resolve_arch(prof, arch)
        return cls(dataset=dataset, loss=loss, **{**prof, **overrides})


_CODE_FILES = ("neural/networks.py", "augment.py", "defaults.py", "losses/_common.py")


def code_hash(loss: str) -> str:
    """SHA-256 (16 hex) of the code that defines a trained network: the network module, the
    augmentations, the defaults, the loss's own module and the training code of this module
    (:func:`train_ssl`, :class:`SSLLossFunction` and their helpers — not the probes or the
    report, so editing those keeps the cache)."""
    import inspect

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for rel in _CODE_FILES + (f"losses/{loss}.py",):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    for obj in (_to_array, _to_torch, SSLLossFunction, ssl_loss, _network_for, _proj_out, train_ssl):
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """``$KREPES_CACHE/networks`` as an absolute path (default ``~/.cache/krepes/networks``).

    Not created here: :func:`load_or_train` creates it and checks that it is writable.
    """
    return cache_root() / "networks"


def provenance(config: SSLConfig) -> Provenance:
    """What a trained network of ``config`` is made from (its cache key is ``.key(24)``).

    ``code``: :func:`code_hash`; ``data``: SHA-256 of the rows of the configuration's split
    (X, y, X_test, y_test, as loaded now); ``env``: torch and NumPy versions; ``config``: the
    configuration's fields, the resolved loss hyper-parameters and the image shape.
    """
    from .. import losses

    loss = losses.get(config.loss, **config.loss_hyper)
    data, image_shape = _split_fingerprint(config.dataset, config.n_train, config.n_test,
                                           config.data_seed, config.dtype)
    return Provenance(
        code=code_hash(config.loss), data=data,
        env={"torch": torch.__version__.split("+")[0], "numpy": np.__version__},
        config={"config": dataclasses.asdict(config), "loss": dataclasses.asdict(loss),
                "image_shape": list(image_shape) if image_shape else None})


def cache_key(config: SSLConfig) -> str:
    """Key of a configuration's network: the first 24 hex of :func:`provenance`'s key."""
    return provenance(config).key(24)


@dataclass
class TrainedNetwork:
    """A trained :class:`~krepes_lib.neural.networks.SSLNetwork` with its data and history.

    Attributes: ``network`` (eval mode), ``config``, ``key``, ``losses`` (mean loss per
    epoch), ``seconds`` (training time, as recorded when it was trained), ``from_cache``, ``path`` and the
    split ``X, y, X_test, y_test`` it was trained on (``X``) and is probed with.
    """

    network: object
    config: SSLConfig
    key: str
    losses: list
    seconds: float
    from_cache: bool
    path: Path | None
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple | None

    @property
    def backbone(self):
        """The representation network (the module whose eNTK the audits use)."""
        return self.network.backbone

    def embed(self, X):
        return self.network.embed(X)


def _load_split(config: SSLConfig):
    return _split(config.dataset, config.n_train, config.n_test, config.data_seed, config.dtype)


@functools.lru_cache(maxsize=8)
def _split_fingerprint(dataset, n_train, n_test, data_seed, dtype):
    """SHA-256 of the split's rows (hashed once per process, like the split is loaded once)."""
    X, y, X_test, y_test, image_shape = _split(dataset, n_train, n_test, data_seed, dtype)
    return array_fingerprint(X, y, X_test, y_test), image_shape


@functools.lru_cache(maxsize=8)
def _split(dataset, n_train, n_test, data_seed, dtype):
    """The rows of a configuration (read-only arrays, loaded once per process)."""
    from .. import data

    sp = data.load_split(dataset, n_train=n_train, n_test=n_test, seed=data_seed)
    X, y, X_test, y_test = sp
    dt = np.dtype(dtype)
    out = (X.astype(dt), np.asarray(y), X_test.astype(dt), np.asarray(y_test))
    for a in out:
        a.setflags(write=False)
    return out + (getattr(sp.train, "image_shape", None),)


def _network_for(config: SSLConfig, d: int, image_shape):
    from .networks import make_network

    arch = config.arch if config.arch != "auto" else ("cnn" if image_shape else "mlp")
    if arch == "cnn" and not image_shape:
        raise ValueError(f"arch='cnn' needs an image dataset; {config.dataset!r} is a table.")
    return make_network(arch, d_in=d, image_shape=image_shape, size=config.size, seed=config.seed,
                        dtype=config.dtype)


def train_ssl(config: SSLConfig, X=None, image_shape=None, progress: bool = True):
    """Train a fresh network of ``config`` on rows X (default: the config's training split).

    Returns ``(network, losses)``: the network in eval mode and the mean loss per epoch.
    Deterministic on a CPU for a given configuration.
    """
    from tqdm.auto import tqdm

    from .. import losses as L

    if X is None:
        X, _, _, _, image_shape = _load_split(config)
    X = np.asarray(X, dtype=np.dtype(config.dtype))
    n = X.shape[0]
    B = min(int(config.batch_size), n)
    if B < 2:
        raise ValueError(f"X has {n} rows; an SSL batch needs >= 2.")
    loss = L.get(config.loss, **config.loss_hyper)
    aug = make_augmenter(image_shape if image_shape else "table", **config.augment)
    net = _network_for(config, X.shape[1], image_shape)
    tdt = torch_dtype(config.dtype)
    det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    params = list(net.parameters())
    P = target = None
    if loss.name == "byol":
        h = _proj_out(net)
        P = torch.nn.Parameter(torch.eye(h, dtype=tdt))  # the kernel model's P₀ = I
        params.append(P)
        target = copy.deepcopy(net)
        for q in target.parameters():
            q.requires_grad_(False)
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    history = []
    try:
        net.train()
        bar = tqdm(range(int(config.epochs)), desc=f"{config.loss} {config.dataset}", disable=not progress,
                   leave=False)
        for epoch in bar:
            rng = np.random.default_rng([int(config.seed), int(epoch)])
            perm = rng.permutation(n)
            total, count = 0.0, 0
            for start in range(0, n - B + 1, B):  # drop the last partial batch
                Xb = X[perm[start:start + B]]
                xa = torch.from_numpy(aug(Xb, rng))
                xb = torch.from_numpy(aug(Xb, rng))
                za, zb = net(xa), net(xb)
                if P is not None:
                    target.train()
                    with torch.no_grad():
                        ta, tb = target(xa), target(xb)
                    value = ssl_loss(loss, za, zb, P, ta, tb)
                else:
                    value = ssl_loss(loss, za, zb)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
                if target is not None:  # EMA target: ξ ← τ ξ + (1 − τ) θ
                    with torch.no_grad():
                        for xi, th in zip(target.state_dict().values(), net.state_dict().values()):
                            if xi.dtype.is_floating_point:
                                xi.mul_(loss.ema).add_(th, alpha=1.0 - loss.ema)
                            else:
                                xi.copy_(th)
                total += float(value.detach())
                count += 1
            history.append(total / max(count, 1))
            bar.set_postfix(loss=f"{history[-1]:.4g}")
            if not np.isfinite(history[-1]):
                raise FloatingPointError(f"{config.loss} on {config.dataset}: the loss became "
                                         f"{history[-1]} in epoch {epoch}; lower lr={config.lr}.")
    finally:
        torch.use_deterministic_algorithms(det)
    return net.eval(), history


def _proj_out(net) -> int:
    """Output width of a network's projector (the h of the loss)."""
    last = [m for m in net.projector.modules() if isinstance(m, torch.nn.Linear)][-1]
    return int(last.out_features)


def _weights_digest(blob: dict) -> str:
    """SHA-256 of a cache blob: its JSON fields and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in blob.items() if k not in ("state_dict", "sha256")},
                                  sort_keys=True, default=str).encode())
    for name, t in sorted(blob["state_dict"].items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _stat(path: Path):
    try:
        st = path.stat()
        return st.st_ino, st.st_size, st.st_mtime_ns
    except OSError:
        return None


def _load_cached(path: Path, key: str, config: SSLConfig, split) -> TrainedNetwork | None:
    """The cached network at ``path``, or None (missing; or damaged, with a CacheWarning)."""
    X, y, X_test, y_test, image_shape = split
    if not path.exists():
        return None
    fix = "It is trained again now and the file replaced."
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, empty file, unpickling error, ...
        size = _stat(path)[1] if _stat(path) else 0
        warnings.warn(CacheWarning(f"the cached network {path} ({size:,} bytes) is unreadable "
                                   f"({type(err).__name__}: {str(err)[:200] or 'no data'}); it is "
                                   f"{'empty' if size == 0 else 'truncated or damaged'}. {fix}"), stacklevel=3)
        return None
    if not isinstance(blob, dict) or "sha256" not in blob or "state_dict" not in blob:
        warnings.warn(CacheWarning(f"the cached network {path} carries no checksum (written by an "
                                   f"older version of krepes_lib), so it cannot be trusted. {fix}"),
                      stacklevel=3)
        return None
    if blob.get("key") != key or _weights_digest(blob) != blob["sha256"]:
        what = ("holds another configuration" if blob.get("key") != key else
                "fails its SHA-256 check (a byte of the weights or history changed)")
        warnings.warn(CacheWarning(f"the cached network {path} {what}. {fix}"), stacklevel=3)
        return None
    net = _network_for(config, X.shape[1], image_shape)
    try:
        net.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError) as err:
        warnings.warn(CacheWarning(f"the cached network {path} does not fit the architecture "
                                   f"({str(err)[:200]}). {fix}"), stacklevel=3)
        return None
    return TrainedNetwork(net.eval(), config, key, list(blob["losses"]), float(blob.get("seconds", 0.0)),
                          True, path, X, y, X_test, y_test, image_shape)


def _unwritable(directory: Path) -> str | None:
    """Why the cache folder cannot take a new file (created if missing), or None when it can."""
    env = os.environ.get("KREPES_CACHE")
    origin = f"KREPES_CACHE={env!r}" if env else "KREPES_CACHE unset, default ~/.cache/krepes"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return (f"the network cache {directory} cannot be written ({err.strerror or err}; "
                f"{origin}). Set KREPES_CACHE to a writable folder to keep trained networks")
    return None


@contextlib.contextmanager
def _training_lock(path: Path, progress: bool):
    """An exclusive ``fcntl`` lock on ``.NAME.pt.lock``: one process trains a network at a time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no fcntl (Windows): no lock
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"krepes: another process is training {path.name} (lock {lock}); waiting for it "
                      "to finish, then loading its network.", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_or_train(config: SSLConfig, force: bool = False, progress: bool = True) -> TrainedNetwork:
    """The trained network of ``config``: from the cache if present and intact (and ``force``
    is False), otherwise trained by :func:`train_ssl` and stored atomically (temp file +
    rename), under a lock so that concurrent callers train it once. See the module docstring
    ("The weight cache") for the key, the checksum and what happens when the cache cannot be
    used."""
    from ..files import atomic_path

    split = _load_split(config)
    X, y, X_test, y_test, image_shape = split
    prov = provenance(config)
    key = prov.key(24)
    path = cache_dir() / f"{config.dataset}-{config.loss}-{key}.pt"
    damaged = None
    if not force:
        found = _load_cached(path, key, config, split)
        if found is not None:
            return found
        damaged = _stat(path)  # None when missing; a damaged file was reported once

    def train():
        t0 = time.perf_counter()
        net, hist = train_ssl(config, X, image_shape, progress=progress)
        return net, hist, time.perf_counter() - t0

    why = _unwritable(path.parent)
    if why is not None:
        warnings.warn(CacheWarning(f"{why}: this network is trained and returned but not stored, so it "
                                   "will be trained again next time."), stacklevel=2)
        net, hist, seconds = train()
        return TrainedNetwork(net, config, key, hist, seconds, False, None, X, y, X_test, y_test, image_shape)
    with _training_lock(path, progress):
        if not force and _stat(path) not in (None, damaged):  # stored while we waited
            found = _load_cached(path, key, config, split)
            if found is not None:
                return found
        net, hist, seconds = train()
        blob = {"key": key, "provenance": prov.as_dict(), "config": dataclasses.asdict(config),
                "losses": [float(v) for v in hist], "seconds": float(seconds),
                "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
        blob["sha256"] = _weights_digest(blob)
        try:
            with atomic_path(path) as tmp:
                torch.save(blob, tmp)
        except OSError as err:
            warnings.warn(CacheWarning(
                f"the trained network could not be stored in {path} ({err.strerror or err}); it is "
                "returned, but will be trained again next time. Free space in, or fix the permissions "
                "of, that folder (KREPES_CACHE)."), stacklevel=2)
            path = None
    return TrainedNetwork(net, config, key, hist, seconds, False, path, X, y, X_test, y_test, image_shape)


def initial_network(trained: TrainedNetwork) -> TrainedNetwork:
    """The network of ``trained`` at its random initialisation: the same architecture, the
    same seed, the weights training started from (eval mode; BatchNorm with its initial
    running statistics), on the same rows. The control of the v3 table: what the probe and the
    eNTK audit give when the network has learned nothing."""
    init = _network_for(trained.config, trained.X.shape[1], trained.image_shape).eval()
    return TrainedNetwork(init, trained.config, f"{trained.key}-init", [], 0.0, True, None, trained.X,
                          trained.y, trained.X_test, trained.y_test, trained.image_shape)


def probe_trained_vs_init(trained: TrainedNetwork, label_fraction: float = 0.1, seed: int = 0) -> dict:
    """Linear-probe accuracy (``label_fraction`` labels) of the trained backbone next to the
    same architecture at its random initialisation (same seed) — did training do anything?"""
    from ..evaluate import linear_probe

    init = initial_network(trained).network
    out = {}
    for name, net in (("trained", trained.network), ("init", init)):
        Z, Zt = net.embed(trained.X), net.embed(trained.X_test)
        out[name] = float(linear_probe(Z, trained.y, Zt, trained.y_test, label_fraction=label_fraction,
                                       seed=seed))
    return out


def probe_table(datasets=("adult", "mnist"), losses=SSL_LOSSES, profile: str = "quick", force: bool = False,
                progress: bool = True, **overrides) -> list:
    """Train (or load) every dataset × loss network of ``profile`` and probe it next to its
    random initialisation: one row per network with the training time, the first/last epoch
    loss and both probe accuracies (10 % labels)."""
    rows = []
    for dataset in datasets:
        for loss in losses:
            cfg = SSLConfig.for_profile(dataset, loss, profile, **overrides)
            t0 = time.perf_counter()
            tr = load_or_train(cfg, force=force, progress=progress)
            pr = probe_trained_vs_init(tr)
            rows.append({"dataset": dataset, "arch": "cnn" if tr.image_shape else "mlp", "loss": loss,
                         "n_train": len(tr.X), "n_test": len(tr.X_test), "epochs": cfg.epochs,
                         "parameters": int(sum(p.numel() for p in tr.backbone.parameters())),
                         "train_s": round(tr.seconds, 1), "from_cache": tr.from_cache,
                         "loss_first": tr.losses[0], "loss_last": tr.losses[-1],
                         "probe_trained": pr["trained"], "probe_init": pr["init"],
                         "wall_s": round(time.perf_counter() - t0, 1)})
    return rows


def main(argv=None):
    """``python -m krepes_lib.neural.ssl --profile quick``: train/load and print :func:`probe_table`."""
    import argparse

    ap = argparse.ArgumentParser(description="Train the SSL networks of a profile and probe them "
                                             "next to their random initialisation.")
    ap.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    ap.add_argument("--datasets", default="adult,mnist")
    ap.add_argument("--losses", default=",".join(SSL_LOSSES))
    ap.add_argument("--force", action="store_true", help="retrain even when the cache has the network")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = probe_table(args.datasets.split(","), args.losses.split(","), args.profile, force=args.force)
    print(f"profile {args.profile}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cache {cache_dir()}")
    print(f"{'dataset':<8}{'arch':<5}{'loss':<22}{'params':>8}{'cached':>7}{'train s':>9}{'loss 1st':>10}{'loss last':>10}"
          f"{'probe trained':>15}{'probe init':>12}")
    for r in rows:
        print(f"{r['dataset']:<8}{r['arch']:<5}{r['loss']:<22}{r['parameters']:>8}{str(r['from_cache']):>7}"
              f"{r['train_s']:>9.1f}"
              f"{r['loss_first']:>10.4g}{r['loss_last']:>10.4g}{r['probe_trained']:>15.4f}{r['probe_init']:>12.4f}")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
