"""The ResNet-18 recipe: audit a torchvision-style ResNet-18 (CIFAR stem) on CIFAR-10, measured.

Book: *The empirical NTK of a network* (``book/entk.md``), section "Auditing a ResNet-18".

:func:`audit_resnet18` is the README's recipe in one function, with the numbers a reader wants
next to it: wall time, peak memory, the estimated and the measured kernel error (against the
exact eNTK on a few held-out rows, by plain autograd), the concentration of the top-1
influence, and the linear probe of the audited representation. Run it in full with::

    python -m krepes_lib.neural.recipes --n-train 2000 --n-test 500        # ~15 min on 2 CPU cores

``tests/test_neural_resnet.py`` runs it on a narrow ResNet-18 and a few rows in seconds.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

from ..evaluate import linear_probe
from ..interpret.diagnostics import influence_concentration
from ._torch import require_torch
from .ntk import kernel_error
from .pipeline import audit_network
from .resnet import Normalize, load_backbone, resnet18

torch = require_torch()

__all__ = ["audit_resnet18", "train_briefly", "save_like", "concentration_study"]


def concentration_study(module, split, *, normalize=(False, True), augment="auto", image_shape=None,
                        layout=None, implementation: str = "auto", error: float = 0.05, m="sqrt", h: int = 32,
                        n_batches: int = 2, batch_size: int = 256, seed: int = 0) -> list:
    """The same network audited through its eNTK and through the normalised eNTK
    k/√(k(x,x)k(x′,x′)) (eq. (entk-normalised)): per variant, the concentration of the top-1
    influence on the held-out rows (eq. (int-concentration)), Precision@1 of the top-1 landmark
    (its class = the test row's class, eq. (int-p1)) next to the cosine baseline, and the time.
    Labels are used for evaluation only."""
    rows = []
    for nz in normalize:
        t0 = time.perf_counter()
        a = audit_network(module, split.X, "barlow_twins", normalize=nz, augment=augment, image_shape=image_shape,
                          layout=layout, implementation=implementation, error=error, m=m, h=h,
                          n_batches=n_batches, batch_size=batch_size, seed=seed)
        conc = a.influence_concentration(split.X_test, warn=False)
        p1 = a.precision_at_1(split.X_test, split.y_test, split.y[a.landmark_indices])
        # the two factors of IS = |k|·‖ΔÃ_l‖: the top-1 by kernel similarity alone, and how
        # unequal the landmark weights ‖ΔÃ_l‖ are (largest over median)
        K = np.asarray(a.kernel_rows(split.X_test))
        by_k = influence_concentration(np.abs(K).argmax(axis=1), a.model.m)
        w = np.linalg.norm(np.asarray(a.delta_A), axis=1)
        rows.append({"normalize": bool(nz), **conc, "top1_share_kernel_only": by_k["top1_share"],
                     "top1_entropy_kernel_only": by_k["top1_entropy"],
                     "delta_norm_max_over_median": float(w.max() / np.median(w)),
                     "precision_at_1": float(p1.krepes),
                     "precision_at_1_cosine": float(p1.cosine), "loss_before": a.loss_before,
                     "loss_after": a.loss_after, "plan": (a.kernel.chosen or {}).get("implementation",
                                                                                   a.kernel.implementation),
                     "seconds": time.perf_counter() - t0})
    return rows


def train_briefly(backbone, X, image_shape, steps: int = 10, batch_size: int = 32, loss: str = "barlow_twins",
                  proj: int = 64, lr: float = 1e-3, seed: int = 0):
    """A few Adam steps of an SSL loss (the library's, through :func:`~krepes_lib.neural.ssl.ssl_loss`)
    on two augmented views of rows X, through ``Normalize`` and a linear projector — enough to
    move the weights away from their initialisation for a checkpoint test. Returns
    ``(backbone, projector, losses)``; the backbone is left in eval mode."""
    from ..augment import make_augmenter
    from .ssl import ssl_loss

    torch.manual_seed(seed)
    norm = Normalize()
    H, W = image_shape[:2]
    C = image_shape[2] if len(image_shape) == 3 else 1
    with torch.no_grad():
        width = backbone(torch.zeros(2, C, H, W)).shape[1]
    projector = torch.nn.Linear(width, proj)
    opt = torch.optim.Adam(list(backbone.parameters()) + list(projector.parameters()), lr=lr)
    aug = make_augmenter(tuple(image_shape))
    rng = np.random.default_rng(seed)
    losses = []
    backbone.train()
    for _ in range(int(steps)):
        rows = np.asarray(X[rng.choice(len(X), size=min(batch_size, len(X)), replace=False)], dtype=np.float32)
        views = [torch.from_numpy(aug(rows, rng)).reshape(-1, H, W, C).permute(0, 3, 1, 2) for _ in range(2)]
        Za, Zb = (projector(backbone(norm(v))) for v in views)
        value = ssl_loss(loss, Za, Zb)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.detach().item())
    backbone.eval()
    return backbone, projector, losses


def save_like(library: str, backbone, projector, path):
    """Save a trained backbone (+ projector) the way ``library`` does, atomically:

    * ``"torchvision"`` / ``"timm"``: the model's ``state_dict()`` (a classifier ``fc`` of 10
      classes attached, as a supervised checkpoint has);
    * ``"solo-learn"``: a Lightning checkpoint ``{"state_dict": {"backbone.<name>": ...,
      "projector.<name>": ..., "classifier.<name>": ...}, "epoch": ...}``;
    * ``"lightly"``: the state dict of a module with ``backbone = nn.Sequential(*list(resnet.
      children())[:-1])`` and a ``projection_head``: ``backbone.0.weight``, ``backbone.4.0.conv1.weight``...
    """
    from ..interpret.export import write_atomic

    sd = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    width = projector.in_features
    if library in ("torchvision", "timm"):
        fc = torch.nn.Linear(width, 10)
        state = {**{k: v for k, v in sd.items() if not k.startswith("fc.")},
                 "fc.weight": fc.weight.detach(), "fc.bias": fc.bias.detach()}
    elif library == "solo-learn":
        state = {"state_dict": {**{f"backbone.{k}": v for k, v in sd.items()},
                                **{f"projector.0.{k}": v for k, v in projector.state_dict().items()},
                                "classifier.weight": torch.zeros(10, width), "classifier.bias": torch.zeros(10)},
                 "epoch": 1, "global_step": 10}
    elif library == "lightly":
        names = [n for n, _ in backbone.named_children()][:-1]  # children()[:-1]: all but fc
        state = {}
        for k, v in sd.items():
            head, rest = k.split(".", 1)
            if head in names:
                state[f"backbone.{names.index(head)}.{rest}"] = v
        state.update({f"projection_head.layers.0.{k}": v for k, v in projector.state_dict().items()})
    else:
        raise ValueError(f"library={library!r}; use 'torchvision', 'timm', 'solo-learn' or 'lightly'.")
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def audit_resnet18(split, checkpoint=None, *, width: int = 64, cifar_stem: bool = True,
                   loss: str = "barlow_twins", error: float = 0.1, time_budget: float | None = 600.0,
                   m="sqrt", h: int = 32,
                   n_batches: int = 2, batch_size: int = 256, n_concentration: int | None = None,
                   error_rows: int = 4, error_dtype: str = "float32", normalize: bool = False,
                   memory_budget: int = 2**31, seed: int = 0, verbose: bool = True) -> dict:
    """Audit a ResNet-18 backbone on ``split`` (a :class:`krepes_lib.data.Split` of images).

    The backbone is :func:`~krepes_lib.neural.resnet.resnet18` (torchvision's when installed),
    loaded from ``checkpoint`` (torchvision / timm / solo-learn / lightly, see
    :func:`~krepes_lib.neural.resnet.load_backbone`) when given, behind the CIFAR-10 input
    normalisation; the rows are the loaders' channels-last images, declared once with
    ``image_shape=split.image_shape`` and the network's ``layout="NCHW"``. The eNTK
    implementation is chosen by ``implementation="auto"`` under the error budget ``error`` and
    the time budget ``time_budget`` (seconds for the features of the training rows and the
    audit's views; the plan and its time estimate are printed first).

    Returns a dict: ``audit``, ``kernel``, ``plan``, ``seconds`` (the audit: landmarks,
    Nyström, one GGN-Newton step), ``seconds_total`` (with concentration, probe and the error
    check), ``peak_rss_mb``, ``kernel_error`` (measured on ``error_rows`` held-out rows against
    the exact eNTK), ``concentration`` (on ``n_concentration`` held-out rows, default all),
    ``probe`` (a linear probe of the audited representation with all training labels) and ``summary``.
    """
    t0 = time.perf_counter()
    backbone = resnet18(cifar_stem=cifar_stem, width=width)
    loaded = None if checkpoint is None else load_backbone(backbone, checkpoint)
    net = torch.nn.Sequential(Normalize(), backbone).eval()
    X, y, X_test, y_test = split
    a = audit_network(net, X, loss, h=h, m=m, implementation="auto", error=error, time_budget=time_budget,
                      normalize=normalize,
                      image_shape=split.image_shape, layout="NCHW", n_batches=n_batches,
                      batch_size=batch_size, seed=seed, memory_budget=memory_budget, verbose=verbose)
    t_audit = time.perf_counter() - t0
    Xc = X_test if n_concentration is None else X_test[:n_concentration]
    conc = a.influence_concentration(Xc)
    t1 = time.perf_counter()
    probe = float(linear_probe(a.embed(X), y, a.embed(X_test), y_test))
    t_probe = time.perf_counter() - t1
    t2 = time.perf_counter()
    err = kernel_error(a.kernel, X_test[:error_rows], dtype=error_dtype) if error_rows else None
    t_err = time.perf_counter() - t2
    out = {"audit": a, "kernel": a.kernel, "plan": {k: v for k, v in (a.kernel.chosen or {}).items() if k != "R"},
           "seconds": t_audit, "seconds_probe": t_probe, "seconds_error": t_err,
           "seconds_total": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(),
           "kernel_error": err, "concentration": conc, "probe": probe, "chance": split.chance,
           "summary": a.summary(), "n_parameters": a.kernel.n_parameters, "n_train": len(X),
           "n_test": len(X_test), "checkpoint": None if loaded is None else len(loaded["loaded"])}
    if verbose:
        print(_report(out), flush=True)
    return out


def _report(r) -> str:
    e = r["kernel_error"]
    c = r["concentration"]
    s = r["summary"]
    lines = [
        f"ResNet-18 audit: {r['n_train']} training rows, {r['n_parameters']:,} parameters, "
        f"plan {r['plan'].get('implementation')} {({k: r['plan'][k] for k in ('S', 'k', 'r_out') if r['plan'].get(k)})}",
        f"  audit (landmarks, Nyström, GGN-Newton step): {r['seconds']:.1f} s; peak RSS {r['peak_rss_mb']:.0f} MB",
        f"  loss {s['loss_before']:.4g} → {s['loss_after']:.4g}, CG {s['cg_iterations']} iterations "
        f"(converged: {s['cg_converged']}), step ratio {s['step_ratio']:.3g}",
        f"  kernel error vs exact: estimated {r['plan'].get('estimated_error', float('nan')):.3f}, measured "
        + ("n/a" if e is None else f"{e['error']:.3f} on {e['n_rows']} held-out rows (exact: {e['seconds_exact']:.0f} s)"),
        f"  top-1 influence: share {c['top1_share']:.3f} (landmark {c['top1_landmark']}), entropy "
        f"{c['top1_entropy']:.3f}, {c['top1_distinct']} distinct of {r['audit'].model.m}; degenerate: {c['degenerate']}",
        f"  linear probe of the audited representation: {r['probe']:.4f} (chance {r['chance']:.4f}); "
        f"total {r['seconds_total']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Audit a ResNet-18 (CIFAR stem) on CIFAR-10 rows and "
                                 "print time, memory, kernel error and influence concentration.")
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--checkpoint", default=None, help="torchvision/timm/solo-learn/lightly checkpoint")
    ap.add_argument("--error", type=float, default=0.1, help="kernel error budget of implementation='auto'")
    ap.add_argument("--time-budget", type=float, default=600.0,
                    help="seconds the eNTK features may take (auto picks the most accurate that fits)")
    ap.add_argument("--n-batches", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--error-rows", type=int, default=4)
    ap.add_argument("--normalize", action="store_true")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--train-steps", type=int, default=0,
                    help="first train the backbone briefly (Barlow Twins, Adam) and save it solo-learn style "
                         "to --save-checkpoint, then audit that checkpoint")
    ap.add_argument("--save-checkpoint", default="resnet18-solo-learn.ckpt")
    ap.add_argument("--json", default=None, help="write the numbers as JSON here")
    ap.add_argument("--concentration-cnn", action="store_true",
                    help="instead: the library's MNIST CNN (quick profile, Barlow Twins) audited through its "
                         "eNTK and its normalised eNTK; prints the influence concentration of both")
    args = ap.parse_args(argv)
    if args.concentration_cnn:
        from .ssl import SSLConfig, load_or_train
        from .. import data

        trained = load_or_train(SSLConfig("mnist", "barlow_twins"))
        split = data.load_split("mnist", n_train=2000, n_test=500, seed=0)
        rows = concentration_study(trained.network.backbone, split, augment=split.image_shape)
        for r in rows:
            print(r, flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1, default=float)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    from .. import data

    split = data.load_split("cifar10", n_train=args.n_train, n_test=args.n_test, seed=0)
    if args.train_steps:
        t0 = time.perf_counter()
        net, proj, losses = train_briefly(resnet18(width=args.width), split.X, split.image_shape,
                                          steps=args.train_steps)
        args.checkpoint = save_like("solo-learn", net, proj, args.save_checkpoint)
        print(f"trained {args.train_steps} steps ({time.perf_counter() - t0:.0f} s, Barlow Twins "
              f"{losses[0]:.4g} → {losses[-1]:.4g}); saved solo-learn style to {args.checkpoint}", flush=True)
    r = audit_resnet18(split, args.checkpoint, width=args.width, error=args.error, time_budget=args.time_budget,
                       n_batches=args.n_batches,
                       batch_size=args.batch_size, error_rows=args.error_rows, normalize=args.normalize)
    if args.json:
        keep = {k: v for k, v in r.items() if k not in ("audit", "kernel")}
        keep["summary"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in keep["summary"].items()}
        with open(args.json, "w") as f:
            json.dump(keep, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
