"""Keeping an audit: :meth:`krepes_lib.Audit.save` and :func:`krepes_lib.load_audit`.

Book: *The empirical NTK of a network* (``book/entk.md``), section "An audit you can keep".

An audit is arrays (ΔÃ, Δγ, Ã₀, γ₀, the landmarks, K_mm, the CG record) plus the kernel that
made them — for a network, the torch module, which is not data. The file (``.npz``, written to
a temporary name and renamed) holds the arrays and a JSON metadata record: the loss and its
hyper-parameters, the model's fingerprint (kernel repr — for a TorchNTK the digest of the
weights and the chosen implementation —, landmarks, h, coordinates, dtype), the options, the
losses and timings, and the SHA-256 of every array. Loading needs the kernel again (``kernel=``
or a ready ``model=``; the library's own kernels are rebuilt from the file); the Nyström basis
is rebuilt on the saved landmarks and the file is **refused** when the fingerprint or K_mm
differ — it was made for another model — or when its arrays no longer match their checksum.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time

import numpy as np

from .backend import to_host

__all__ = ["save_audit", "load_audit", "FORMAT"]

FORMAT = "krepes-audit/1"


def _arrays(a) -> dict:
    cg = a.cg
    main = a.model.params[a.model._main]
    out = {"delta_A": a.delta_A, "delta_gamma": a.delta_gamma, "A0": a.A0, "gamma0": a.gamma0,
           "main": main, "landmarks": a.landmarks, "K_mm": a.K_mm,
           "landmark_indices": np.asarray([] if a.landmark_indices is None else a.landmark_indices, dtype=np.int64),
           "cg_residual_norms": cg.residual_norms, "cg_converged": cg.converged,
           "cg_breakdown": cg.breakdown, "cg_rhs_norms": cg.rhs_norms}
    return {k: np.asarray(to_host(v)) for k, v in out.items()}


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        v = np.ascontiguousarray(arrays[k])
        h.update(k.encode() + repr((v.shape, v.dtype.str)).encode())
        h.update(v.tobytes())
    return h.hexdigest()


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic,)):
        return x.item()
    return x


def _kernel_record(kernel) -> dict:
    rec = {"repr": repr(kernel), "class": f"{type(kernel).__module__}.{type(kernel).__qualname__}",
           "name": getattr(kernel, "name", None)}
    if hasattr(kernel, "digest"):
        rec["weights_digest"] = kernel.digest
    chosen = getattr(kernel, "chosen", None)
    if chosen:
        rec["plan"] = {k: v for k, v in chosen.items() if k != "R"}
    if dataclasses.is_dataclass(kernel):
        fields = {}
        for f in dataclasses.fields(kernel):
            v = getattr(kernel, f.name)
            if isinstance(v, (int, float, str, bool, type(None))):
                fields[f.name] = v
            elif isinstance(v, tuple) and all(isinstance(x, (int, float)) for x in v):
                fields[f.name] = list(v)
        rec["fields"] = fields
    return rec


def save_audit(a, path) -> str:
    """Write the audit ``a`` to ``path`` (see the module notes); returns the path."""
    from .interpret.export import write_atomic

    try:
        from importlib.metadata import version

        __version__ = version("krepes-companion")
    except Exception:  # not installed (a checkout on sys.path)
        __version__ = "unknown"

    arrays = _arrays(a)
    loss = a.objective.loss if hasattr(a.objective, "loss") else a.objective
    hyper = {k: v for k, v in getattr(loss, "__dict__", {}).items()
             if isinstance(v, (int, float, str, bool)) and not k.startswith("_")}
    meta = {
        "format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "krepes_lib": __version__,
        "loss": {"name": getattr(a.objective, "name", str(a.objective)), "hyper": hyper, "repr": repr(loss)},
        "model": {"fingerprint": a.model.fingerprint(), "h": a.model.h, "m": a.model.m, "r": a.model.r,
                  "coords": a.model.coords, "init": a.model.init, "dtype": a.model.dtype.name},
        "kernel": _kernel_record(a.kernel),
        "audit": {"loss_before": a.loss_before, "loss_after": a.loss_after, "grad_norm": a.grad_norm,
                  "damping": a.damping, "seconds": a.seconds, "n_matvec": a.n_matvec,
                  "cg_iterations": int(a.cg.iterations), "cg_stopped_by": a.cg.stopped_by,
                  "step_ratio": a.step_ratio, "loss_rose": a.loss_rose,
                  "damping_accepted": getattr(a, "damping_accepted", a.damping),
                  "step_length": getattr(a, "step_length", 1.0),
                  "step_accepted": getattr(a, "step_accepted", None),
                  "trials": _jsonable(getattr(a, "trials", []))},
        "options": {f.name: (list(v) if isinstance(v := getattr(a.options, f.name), tuple) else v)
                    for f in dataclasses.fields(a.options)},
        "concentration": a._K.get("concentration"),
        "sha256": _digest(arrays),
    }

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)

    return write_atomic(path, write)


def _read(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a readable audit file ({err}); write it with Audit.save(path).") from err
    if "__meta__" not in data:
        raise ValueError(f"{path} has no audit metadata; it was not written by Audit.save.")
    meta = json.loads(str(data.pop("__meta__")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}.")
    if _digest(data) != meta["sha256"]:
        raise ValueError(f"{path}: the arrays do not match their SHA-256 (the file was changed or "
                         "damaged after it was written); write the audit again.")
    return meta, data


def _rebuild_kernel(meta, path):
    from .kernels import KERNELS

    rec = meta["kernel"]
    cls = KERNELS.get(rec.get("name"))
    if cls is None or rec["class"] != f"{cls.__module__}.{cls.__qualname__}":
        raise ValueError(f"{path} was made with the kernel {rec['repr']}; pass it again: "
                         "load_audit(path, kernel=...) (for a network: TorchNTK(your_module, ...) with the "
                         "same settings) or model=....")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in rec.get("fields", {}).items()})


def _step_fields(cls, a) -> dict:
    """The guarded step's record (accepted damping, step length, trials) for Audit classes
    that have those fields."""
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    out = {k: a[k] for k in ("damping_accepted", "step_length", "step_accepted", "trials")
           if k in names and k in a}
    return out


def load_audit(path, kernel=None, model=None, cls=None):
    """Read an audit written by :meth:`krepes_lib.Audit.save`.

    Parameters
    ----------
    path : path-like
    kernel : Kernel, optional
        The kernel the audit was made with (required for a TorchNTK: the network itself is
        not in the file). A TorchNTK planned by ``implementation="auto"`` gets the saved plan.
    model : NystromModel, optional
        A ready model instead of ``kernel`` (its fingerprint must match).

    cls : type
        The audit class to build (:class:`krepes_lib.Audit`, passed by :func:`krepes_lib.load_audit`
        so that this module does not import :mod:`krepes_lib.audit`).

    Returns
    -------
    Audit — every metric works as on the original (kernel rows are recomputed for new
    test rows).

    Raises
    ------
    ValueError
        The file is unreadable or changed (checksum), or it was made for another model:
        another kernel (weights, settings), other landmarks, another h.
    """
    from .cg import CGResult
    from .landmarks import Landmarks
    from .losses import make_objective
    from .model import NystromModel
    from .nystrom import Nystrom
    from .options import Options

    meta, arr = _read(path)
    mrec = meta["model"]
    if model is None:
        if kernel is None:
            kernel = _rebuild_kernel(meta, path)
        plan = meta["kernel"].get("plan")
        if plan and hasattr(kernel, "use_plan") and getattr(kernel, "implementation", "") == "auto":
            kernel.use_plan(plan)
        idx = arr["landmark_indices"]
        lm = Landmarks(points=arr["landmarks"], indices=idx, method="saved") if idx.size else arr["landmarks"]
        try:
            nys = Nystrom(kernel, lm, dtype=mrec["dtype"])
        except ValueError as err:
            raise ValueError(f"{path}: the given kernel does not fit the saved landmarks ({err}); the audit "
                             f"was made with {meta['kernel']['repr']}.") from err
        if nys.rank < mrec["h"]:
            raise ValueError(f"{path} was made for another model: K_mm of the given kernel has rank {nys.rank} "
                             f"< h = {mrec['h']}; the audit was made with {meta['kernel']['repr']}.")
        model = NystromModel(nys, h=mrec["h"], coords=mrec["coords"])
        model.params[model._main][...] = arr["main"]
    fp = model.fingerprint()
    if fp != mrec["fingerprint"]:
        raise ValueError(
            f"{path} was made for another model: its fingerprint (kernel, landmarks, h, coordinates, "
            f"dtype) differs. Saved kernel: {meta['kernel']['repr']}; given: {model.nystrom.kernel!r}.")
    K_mm = np.asarray(to_host(model.nystrom.K_mm), dtype=np.float64)
    ref = arr["K_mm"].astype(np.float64)
    tol = 1e-4 if mrec["dtype"] == "float32" else 1e-9
    if K_mm.shape != ref.shape or np.abs(K_mm - ref).max() > tol * max(np.abs(ref).max(), 1e-300):
        raise ValueError(f"{path} was made for another model: the kernel gives another K_mm on the saved "
                         f"landmarks (saved kernel {meta['kernel']['repr']}).")
    xp, dt = model.xp, model.dtype
    model.params["gamma"][...] = xp.asarray(arr["gamma0"], dtype=dt)
    lrec = meta["loss"]
    try:
        objective = make_objective(lrec["name"], **lrec["hyper"])
    except (TypeError, ValueError, KeyError):
        objective = lrec["name"]
    try:
        opts = Options(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["options"].items()})
    except (TypeError, ValueError):
        opts = Options()
    a = meta["audit"]
    cg = CGResult(x=None, iterations=a["cg_iterations"], residual_norms=arr["cg_residual_norms"],
                  converged=arr["cg_converged"], breakdown=arr["cg_breakdown"],
                  stopped_by=a["cg_stopped_by"], rhs_norms=arr["cg_rhs_norms"])
    if cls is None:
        raise TypeError("load_audit needs cls=krepes_lib.Audit; call krepes_lib.load_audit(path, ...).")
    out = cls(model=model, objective=objective, delta_A=xp.asarray(arr["delta_A"], dtype=dt),
                delta_gamma=xp.asarray(arr["delta_gamma"], dtype=dt), loss_before=a["loss_before"],
                loss_after=a["loss_after"], grad_norm=a["grad_norm"], cg=cg, damping=a["damping"],
                seconds=a["seconds"], n_matvec=a["n_matvec"], options=opts,
                **_step_fields(cls, a))
    if meta.get("concentration"):
        out._K["concentration"] = meta["concentration"]
    out.provenance = meta
    return out
