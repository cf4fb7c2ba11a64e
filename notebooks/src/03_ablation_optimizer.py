# %% [markdown]
# # Ablation: the optimiser (first-order, preconditioned, Newton-CG)
#
# **What this reproduces.** The v1 paper trains the Nyström model of eq. {eq}`model` with Adam
# and states that *second-order, loss-specific* preconditioning — the generalised Gauss–Newton
# (GGN) matrix of the loss lifted through the model, eq. {eq}`ggn-lift` — improves optimisation.
# Public reviews of v1 asked for evidence that such a preconditioner helps for losses that are
# *not* quadratic (spec §7). Barlow Twins is a non-linear least-squares loss (the residuals pass
# through a column standardisation), SimCLR a cross-entropy on normalised logits: neither is
# quadratic in the parameters. We compare five optimisers on the same data, landmarks, PC
# initialisation and augmented batches:
#
# | name | parameters seen by the optimiser | update |
# |---|---|---|
# | `adam_raw` | Ã (coords `raw`) | plain Adam |
# | `adam_whitened` | W, with $\tilde A = U_r\Lambda_r^{-1/2}W$, eq. {eq}`nys-whiten` | plain Adam |
# | `adam_falkon` | Ã (coords `raw`) | Adam on $P\,\nabla_{\tilde A}L$, with $P$ the loss-agnostic preconditioner of eq. {eq}`precond` |
# | `adam_ggn` | W (whitened) | Adam on the GGN-CG direction $(H_{GN} + \delta I)^{-1}\nabla L$ of the batch, eq. {eq}`newton-step` |
# | `newton_cg` | W (whitened) | GGN-Newton-CG step {eq}`newton-step` with a backtracking (Armijo) line search |
#
# and we measure the training objective against epochs and against wall-clock seconds, the
# 10 %-label linear-probe accuracy of the final representation, and the cost of one lifted
# GGN product (HVP) relative to one gradient for each two-view loss.
#
# **Our choices (the paper gives none of them).** RBF kernel with the median bandwidth,
# k-means++ landmarks, PC initialisation; the Adam learning rate of each first-order method is
# picked from the grid `lrs` by the lowest final objective (the tuning runs are not counted in
# the wall-clock times); CG damping, iteration caps and the FALKON λ are the parameters below.
# The *objective* plotted is the mean loss on fixed evaluation views (a fixed set of
# augmented batches of the training set, drawn once), evaluated after every epoch — not the
# running training loss, because `fit` logs the loss *before* each step and `fit_newton_cg`
# the loss *after* the line search on the same batch, which would favour Newton-CG.
# Wall-clock times are measured on whatever machine runs the notebook (a shared CPU in CI) and
# include the one-off set-up of the FALKON preconditioner; on a CPU they are taken with
# `cpu_threads` BLAS threads. A learning rate at which Adam diverges is reported and skipped.

# %% tags=["parameters"]
datasets = ["digits"]  # krepes_lib.data names; "adult" uses its own train/test files
losses = ["barlow_twins"]  # two-view losses to train with (e.g. add "simclr", "vicreg")
methods = ["adam_raw", "adam_whitened", "adam_falkon", "adam_ggn", "newton_cg"]
kernel = "rbf"
landmark_method = "kmeans++"
m = 64  # landmarks
h = 16  # representation dimensions
epochs = 4
batch_size = 128
n_train = 1000  # training points (the rest of the data set is not used)
n_test = 500  # held-out points for the linear probe
lrs = [1e-3, 1e-2]  # Adam learning-rate grid; each first-order method is reported at its best
seeds = [0]  # training streams (shuffles and augmentations); landmarks use seed 0
label_fraction = 0.1  # the 10 %-label linear probe of spec §7
falkon_lam = 1e-3  # λ of the FALKON preconditioner P, eq. (precond)
ggn_damping = 1e-2  # δ of the GGN-preconditioned Adam
ggn_cg_iter = 5  # CG iterations per batch for adam_ggn
newton_damping = 1e-2  # δ of Newton-CG
newton_cg_iter = 10  # CG iterations per batch for newton_cg
n_eval_views = 512  # training points in the fixed evaluation views of the objective
hvp_losses = ["barlow_twins", "vicreg", "simclr", "spectral_contrastive", "simple_contrastive"]
hvp_repeats = 5
dtype = "float64"
cpu_threads = 1  # host BLAS threads; 1 is fastest for these small products on a shared CPU (None: all)

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import t as student_t

from krepes_lib import data, landmarks as LM, losses as LOSSES
from krepes_lib.augment import make_augmenter
from krepes_lib.backend import default_xp, limit_host_threads, synchronize, to_device
from krepes_lib.evaluate import linear_probe
from krepes_lib.ggn import FalkonGradTransform, GGNGradTransform, fit_newton_cg, hvp_cost_ratio
from krepes_lib.kernels import make_kernel, median_sigma
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.preconditioner import FalkonPreconditioner
from krepes_lib.results import save_figure, save_results
from krepes_lib.train import fit, train_step

limit_host_threads(cpu_threads)  # NumPy/SciPy BLAS threads (None: all)
xp = default_xp()  # CuPy on a GPU, NumPy otherwise
print("array backend:", xp.__name__)
LABELS = {
    "adam_raw": "Adam, raw Ã",
    "adam_whitened": "Adam, whitened W",
    "adam_falkon": "Adam + P (FALKON), raw Ã",
    "adam_ggn": "Adam + GGN-CG, whitened W",
    "newton_cg": "GGN-Newton-CG + line search",
}
FIRST_ORDER = [k for k in methods if k.startswith("adam_")]
unknown = sorted(set(methods) - set(LABELS))
assert not unknown, f"unknown methods {unknown}; choose from {sorted(LABELS)}"

# %% [markdown]
# ## Data, landmarks and the fixed evaluation views
#
# Each data set is split into `n_train` training and `n_test` probe-test points (stratified;
# MNIST is its 10k test set split in two; Adult uses `adult.data` / `adult.test`; when a data
# set is smaller than `n_train + n_test`, both shrink in proportion). The
# landmarks are chosen once per data set among the training points.

# %%
def load_split(name, n_train, n_test, seed=0):
    """(Dataset, X_train, y_train, X_test, y_test), stratified, disjoint."""
    if name == "adult":
        tr = data.load("adult", split="train", n=n_train, seed=seed)
        te = data.load("adult", split="test", n=n_test, seed=seed)
        return tr, tr.X, tr.y, te.X, te.y
    D = data.load(name, seed=seed)
    if n_train + n_test > len(D):  # a small data set (digits): shrink both, keep the ratio
        n_test = round(len(D) * n_test / (n_train + n_test))
        n_train = len(D) - n_test
    keep = data.stratified_indices(D.y, n_train + n_test, seed=seed)
    y = D.y[keep]
    test = np.zeros(len(keep), dtype=bool)
    test[data.stratified_indices(y, n_test, seed=seed + 1)] = True
    X = D.X[keep]
    return D, X[~test], y[~test], X[test], y[test]


def make_kern(name, X):
    if name in ("rbf", "laplacian"):
        return make_kernel(name, sigma=median_sigma(X))
    return make_kernel(name)


setups = {}
for ds in datasets:
    D, Xtr_h, ytr, Xte_h, yte = load_split(ds, n_train, n_test)
    Xtr, Xte = to_device(Xtr_h, xp, dtype=dtype), to_device(Xte_h, xp, dtype=dtype)
    kern = make_kern(kernel, Xtr_h)
    sel = LM.select_landmarks(Xtr, m, method=landmark_method, kernel=kern, seed=0)
    nys = Nystrom(kern, sel.points, dtype=dtype)
    aug = make_augmenter(D)
    # fixed evaluation views: batches of size batch_size, augmented once with a fixed seed
    rng = np.random.default_rng(12345)
    idx = rng.permutation(Xtr.shape[0])[: max(batch_size, min(n_eval_views, Xtr.shape[0]))]
    eval_views = []
    for s in range(0, len(idx) - batch_size + 1, batch_size):
        Xb = Xtr[xp.asarray(idx[s:s + batch_size])]
        eval_views.append((aug(Xb, rng), aug(Xb, rng)))
    setups[ds] = dict(D=D, Xtr=Xtr, ytr=ytr, Xte=Xte, yte=yte, nys=nys, aug=aug,
                      eval_views=eval_views, n_classes=len(D.classes))
    print(f"{ds}: train {Xtr.shape}, test {Xte.shape}, {kern}, m = {m}, rank r = {nys.rank}, "
          f"{len(eval_views)} evaluation batches of {batch_size}")


def objective(model, loss, views):
    """Mean training objective (loss on Z plus any RKHS penalty) on fixed views."""
    return float(np.mean([float(train_step(model, loss, v)[0]) for v in views]))


def probe(model, S):
    return linear_probe(model.embed(S["Xtr"]), S["ytr"], model.embed(S["Xte"]), S["yte"],
                        label_fraction=label_fraction, seed=0)

# %% [markdown]
# ## Training runs
#
# Every run starts from the same PC initialisation (eq. {eq}`nys-pc`; in whitened coordinates
# $W_0 = [I_h; 0]$, the same function). After each epoch the objective is evaluated on the fixed
# views; its time is not counted. The first-order methods run once per learning rate in `lrs`.

# %%
def coords_of(method):
    return "raw" if method in ("adam_raw", "adam_falkon") else "whitened"


def run(ds, loss_name, method, lr, seed):
    S = setups[ds]
    loss = LOSSES.get(loss_name)
    model = NystromModel(S["nys"], h, coords=coords_of(method))
    obj = lambda mdl: objective(mdl, loss, S["eval_views"])  # noqa: E731
    obj0 = obj(model)
    setup_s, transform = 0.0, None
    if method == "adam_falkon":
        synchronize(xp)
        t0 = time.perf_counter()
        transform = FalkonGradTransform(FalkonPreconditioner.from_nystrom(S["nys"], S["Xtr"], falkon_lam))
        synchronize(xp)
        setup_s = time.perf_counter() - t0
    elif method == "adam_ggn":
        transform = GGNGradTransform(damping=ggn_damping, cg_max_iter=ggn_cg_iter)
    try:
        if method == "newton_cg":
            hist = fit_newton_cg(model, S["Xtr"], loss, epochs, batch_size, seed=seed,
                                 damping=newton_damping, cg_max_iter=newton_cg_iter,
                                 augment=S["aug"], eval_fn=obj, progress=False)
        else:
            hist = fit(model, S["Xtr"], loss, epochs, batch_size, seed=seed, lr=lr, augment=S["aug"],
                       eval_fn=obj, progress=False, grad_transform=transform)
    except FloatingPointError as err:  # Adam diverged at this learning rate: keep the record
        print(f"  {ds} / {loss_name} / {method} / lr {lr} / seed {seed}: diverged ({str(err).splitlines()[0]})")
        return {"objective": [obj0] + [np.nan] * epochs, "train_loss": [], "time": [setup_s] + [np.nan] * epochs,
                "probe": np.nan, "n_matvec": None, "diverged": True}
    finite = bool(np.isfinite(hist.probe).all())
    return {
        "objective": [obj0] + list(hist.probe),                        # epochs 0..E
        "train_loss": list(hist.loss),                                  # as logged by the trainer
        "time": list(setup_s + np.concatenate([[0.0], np.cumsum(hist.time)])),  # cumulative s
        "probe": probe(model, S) if finite else np.nan,
        "n_matvec": getattr(transform, "n_matvec", None),
        "diverged": not finite,
    }


runs = {}  # (ds, loss, method, lr) -> list over seeds
t_all = time.perf_counter()
for ds in datasets:
    for loss_name in losses:
        for method in methods:
            for lr in (lrs if method in FIRST_ORDER else [None]):
                runs[ds, loss_name, method, lr] = [run(ds, loss_name, method, lr, s) for s in seeds]
print(f"{len(runs)} configurations × {len(seeds)} seed(s) in {time.perf_counter() - t_all:.1f} s")

# %%
best_lr, summary = {}, {}
for ds in datasets:
    for loss_name in losses:
        for method in methods:
            cands = lrs if method in FIRST_ORDER else [None]
            final = {lr: (np.inf if any(r["diverged"] for r in runs[ds, loss_name, method, lr])
                          else np.mean([r["objective"][-1] for r in runs[ds, loss_name, method, lr]]))
                     for lr in cands}
            lr = min(cands, key=lambda c: final[c])
            if not np.isfinite(final[lr]):
                raise RuntimeError(f"{ds} / {loss_name} / {method}: diverged at every learning rate "
                                   f"{cands} (or every run of newton_cg); lower `lrs` / raise the damping.")
            best_lr[ds, loss_name, method] = lr
            R = runs[ds, loss_name, method, lr]
            obj = np.array([r["objective"] for r in R])
            tim = np.array([r["time"] for r in R])
            prb = np.array([r["probe"] for r in R])
            summary[ds, loss_name, method] = dict(
                lr=lr, obj_mean=obj.mean(0), obj_std=obj.std(0), time_mean=tim.mean(0),
                final=float(obj[:, -1].mean()), final_std=float(obj[:, -1].std()),
                finals=obj[:, -1], first=obj[:, 1], probes=prb,
                probe=float(prb.mean()), probe_std=float(prb.std()),
                s_per_epoch=float(np.diff(tim, axis=1).mean()),
            )

init_probe = {}
for ds in datasets:
    init_probe[ds] = probe(NystromModel(setups[ds]["nys"], h), setups[ds])

hdr = f"{'data':<11}{'loss':<14}{'method':<15}{'lr':>8}{'objective E0 → final':>26}{'s/epoch':>9}{'probe %':>14}"
print(hdr)
for (ds, loss_name, method), s in summary.items():
    lr = "-" if s["lr"] is None else f"{s['lr']:g}"
    print(f"{ds:<11}{loss_name:<14}{method:<15}{lr:>8}{s['obj_mean'][0]:>11.4g} → {s['final']:>8.4g}±{s['final_std']:<5.2g}"
          f"{s['s_per_epoch']:>9.3f}{100 * s['probe']:>8.1f}±{100 * s['probe_std']:<4.1f}")
for ds in datasets:
    print(f"{ds}: probe accuracy of the PC initialisation (no training) {100 * init_probe[ds]:.1f} %")

# %%
combos = [(ds, loss_name) for ds in datasets for loss_name in losses]
fig, axes = plt.subplots(len(combos), 3, figsize=(15, 3.8 * len(combos)), squeeze=False)
for row, (ds, loss_name) in zip(axes, combos):
    for method in methods:
        s = summary[ds, loss_name, method]
        lab = LABELS[method] + ("" if s["lr"] is None else f" (lr {s['lr']:g})")
        ep = np.arange(epochs + 1)
        row[0].plot(ep, s["obj_mean"], marker="o", label=lab)
        row[0].fill_between(ep, s["obj_mean"] - s["obj_std"], s["obj_mean"] + s["obj_std"], alpha=0.2)
        row[1].plot(s["time_mean"], s["obj_mean"], marker="o", label=lab)
    row[0].set_xlabel("epoch")
    row[1].set_xlabel("cumulative training time (s, this machine)")
    for ax in row[:2]:
        ax.set_ylabel(f"{loss_name} objective on fixed views")
        ax.set_title(f"{ds}, {loss_name}")
    row[0].legend(fontsize=7)
    pr = [100 * summary[ds, loss_name, k]["probe"] for k in methods]
    er = [100 * summary[ds, loss_name, k]["probe_std"] for k in methods]
    row[2].bar(range(len(methods)), pr, yerr=er, capsize=3, color=[f"C{i}" for i in range(len(methods))])
    row[2].axhline(100 * init_probe[ds], color="k", ls="--", label="PC init, untrained")
    row[2].set_xticks(range(len(methods)))
    row[2].set_xticklabels(methods, rotation=30, ha="right", fontsize=8)
    row[2].set_ylabel(f"linear-probe accuracy (%, {label_fraction:.0%} labels)")
    row[2].set_ylim(max(0, min(pr + [100 * init_probe[ds]]) - 10), 100)
    row[2].legend(fontsize=7)
fig.tight_layout()
save_figure(fig, "03_ablation_optimizer_curves")
plt.show()

# %% [markdown]
# ## Cost of one GGN product
#
# A CG iteration costs one lifted GGN product (eq. {eq}`ggn-lift`): a forward (jvp) and a
# backward (vjp) through the batch's kernel block plus the loss's hand-derived Q-product. We time
# it against one gradient (`train_step`: kernel block, forward, loss, backward) on the same
# batch, in the same run (`krepes_lib.ggn.hvp_cost_ratio`; the HVP reuses the cached kernel
# block, as inside CG). `benchmarks/bench_hvp.py` does the same at larger sizes.

# %%
S0 = setups[datasets[0]]
rng = np.random.default_rng(0)
Xb = S0["Xtr"][xp.asarray(rng.permutation(S0["Xtr"].shape[0])[:batch_size])]
views = (S0["aug"](Xb, rng), S0["aug"](Xb, rng))
hvp = {}
for loss_name in hvp_losses:
    # three timings of `hvp_repeats` each; the fastest of each kind is the least disturbed by
    # other processes on the machine
    rs = [hvp_cost_ratio(NystromModel(S0["nys"], h), LOSSES.get(loss_name), views, repeats=hvp_repeats)
          for _ in range(3)]
    g_s, h_s = min(r["grad_s"] for r in rs), min(r["hvp_s"] for r in rs)
    r = hvp[loss_name] = {"grad_s": g_s, "hvp_s": h_s, "ratio": h_s / g_s}
    print(f"{loss_name:<22} gradient {1e3 * r['grad_s']:7.3f} ms   HVP {1e3 * r['hvp_s']:7.3f} ms   "
          f"HVP / gradient = {r['ratio']:.2f}")
print(f"({datasets[0]}, B = {batch_size} × 2 views, m = {m}, h = {h}, {dtype}, {xp.__name__})")

# %% [markdown]
# ## What must hold
#
# The notebook's test at the default parameters: every objective is finite; the Newton-CG line
# search never accepts an increase on its batch, so its objective on the fixed views falls well
# below the PC initialisation's; Adam at its best learning rate lowers the objective too; probe
# accuracies are valid and above chance. Which optimiser wins is *not* asserted: it depends on
# the data, the loss and the tuning; timings are reported, never asserted (they depend on the
# machine and its load).

# %%
for (ds, loss_name, method), s in summary.items():
    assert np.isfinite(s["obj_mean"]).all(), (ds, loss_name, method)
    chance = 1.0 / setups[ds]["n_classes"]
    assert chance < s["probe"] <= 1.0, (ds, loss_name, method, s["probe"])
    if method == "newton_cg" or method == "adam_whitened":
        assert s["final"] < 0.95 * s["obj_mean"][0], (ds, loss_name, method, s["obj_mean"])
for loss_name, r in hvp.items():
    assert np.isfinite(r["ratio"]) and r["ratio"] > 0, (loss_name, r)

# %% [markdown]
# ## The paper's claim and this run
#
# **Paper (v1):** loss-specific GGN preconditioning (and second-order steps) improve the
# optimisation of KREPES. **Reviewers:** show that the preconditioner helps for non-quadratic
# losses. The cell below turns this run's numbers into verdicts, per data set and loss:
#
# 1. *per epoch*: does a GGN-based method (`adam_ggn`, `newton_cg`) reach a lower objective
#    after the same number of epochs than the best plain Adam run (`adam_raw`, `adam_whitened`,
#    each at its best learning rate)?
# 2. *per second*: how long does each method need to reach the final objective of the best plain
#    Adam run (wall clock, set-up included)?
# 3. does the loss-agnostic P help Adam in raw coordinates (`adam_falkon` vs `adam_raw`)?
# 4. is the lower objective a better representation (probe accuracy; tolerance 0.5 points)?
#
# All methods share the training streams of each seed, so we compare *paired* differences over
# seeds: a difference counts only when the 95 % Student-t confidence interval of the mean paired
# difference clears zero by 2 % of the objective (with one seed there is no interval and only
# the 2 % applies); otherwise it is reported as "within noise". The learning rates were chosen
# on the same seeds, which slightly favours the tuned Adam runs.

# %%
REL = 0.02


def ci_halfwidth(diffs):
    """Half-width of the 95 % Student-t confidence interval of the mean of paired differences."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return 0.0
    return float(student_t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))


def compare(a, b, key="finals", tol=None):
    """'lower' / 'higher' / 'within noise' for a[key] vs b[key] (paired by seed); the tolerance
    is ``tol`` or 2 % of b's mean."""
    d = np.asarray(a[key]) - np.asarray(b[key])
    margin = ci_halfwidth(d) + (REL * abs(float(np.mean(b[key]))) if tol is None else tol)
    if d.mean() < -margin:
        return "lower"
    if d.mean() > margin:
        return "higher"
    return "within noise"


def time_to(s, target):
    hit = np.nonzero(s["obj_mean"] <= target)[0]
    return float(s["time_mean"][hit[0]]) if hit.size else float("inf")


claims = []
for ds, loss_name in combos:
    plain = [k for k in ("adam_raw", "adam_whitened") if k in methods]
    if not plain:
        continue
    base_name = min(plain, key=lambda k: summary[ds, loss_name, k]["final"])
    base = summary[ds, loss_name, base_name]
    tag = f"{ds}, {loss_name}"
    for k in [k for k in ("adam_ggn", "newton_cg") if k in methods]:
        s = summary[ds, loss_name, k]
        c = compare(s, base)
        t_k, t_b = time_to(s, base["final"]), time_to(base, base["final"])
        speed = (f"reaches it in {t_k:.2f} s vs {t_b:.2f} s for {base_name}" if np.isfinite(t_k)
                 else f"does not reach it within {epochs} epochs ({s['time_mean'][-1]:.2f} s)")
        claims.append({
            "claim": f"{tag}: {k} optimises better than plain Adam ({epochs} epochs)",
            "paper": "GGN preconditioning improves optimisation (v1)",
            "ours": (f"final objective {s['final']:.4g}±{s['final_std']:.2g} vs {base['final']:.4g}±"
                     f"{base['final_std']:.2g} ({base_name}, lr {base['lr']:g}); after epoch 1: "
                     f"{np.mean(s['first']):.4g} vs {np.mean(base['first']):.4g} "
                     f"({compare(s, base, 'first')}); per second: {k} {speed}"),
            "verdict": {"lower": "holds per epoch", "higher": "does not hold (higher objective)",
                        "within noise": "no difference beyond noise"}[c]
            + ("; also faster in wall clock" if c == "lower" and t_k < t_b else
               "; but not faster in wall clock" if c == "lower" else ""),
        })
    if "adam_falkon" in methods and "adam_raw" in methods:
        s, b = summary[ds, loss_name, "adam_falkon"], summary[ds, loss_name, "adam_raw"]
        c = compare(s, b)
        claims.append({
            "claim": f"{tag}: the loss-agnostic P helps Adam in raw coordinates",
            "paper": "general preconditioner (spec §4); no ablation reported",
            "ours": f"adam_falkon {s['final']:.4g} (lr {s['lr']:g}) vs adam_raw {b['final']:.4g} (lr {b['lr']:g})",
            "verdict": {"lower": "holds", "higher": "does not hold (P slows Adam down)",
                        "within noise": "no difference beyond noise"}[c],
        })
    best_obj = min(methods, key=lambda k: summary[ds, loss_name, k]["final"])
    best_prb = max(methods, key=lambda k: summary[ds, loss_name, k]["probe"])
    gap = compare(summary[ds, loss_name, best_obj], summary[ds, loss_name, best_prb], "probes", tol=0.005)
    claims.append({
        "claim": f"{tag}: the lowest objective gives the best linear probe",
        "paper": "implicit (optimisation matters for accuracy)",
        "ours": (f"lowest objective: {best_obj} (probe {100 * summary[ds, loss_name, best_obj]['probe']:.1f} %); "
                 f"best probe: {best_prb} ({100 * summary[ds, loss_name, best_prb]['probe']:.1f} %); "
                 f"PC init untrained {100 * init_probe[ds]:.1f} %"),
        "verdict": ("holds" if best_obj == best_prb else
                    "no difference beyond noise between the two" if gap == "within noise" else
                    "does not hold: the lowest objective has a lower probe accuracy beyond noise"),
    })
claims.append({
    "claim": "cost of one lifted GGN product relative to one gradient",
    "paper": "not reported",
    "ours": ", ".join(f"{k} {r['ratio']:.2f}×" for k, r in hvp.items()),
    "verdict": f"measured on {datasets[0]} (B = {batch_size}, m = {m}, h = {h})",
})
for c in claims:
    print(f"- {c['claim']}:\n    ours: {c['ours']}\n    → {c['verdict']}")

# %%
save_results(
    "03_ablation_optimizer",
    {
        "claims": claims,
        "summary": {f"{k[0]}|{k[1]}|{k[2]}": {kk: vv for kk, vv in v.items()} for k, v in summary.items()},
        "all_lrs_final_objective": {f"{k[0]}|{k[1]}|{k[2]}|{k[3]}": [r["objective"][-1] for r in v]
                                    for k, v in runs.items()},
        "init_probe": init_probe,
        "hvp_cost": hvp,
    },
    parameters=dict(datasets=datasets, losses=losses, methods=methods, kernel=kernel,
                    landmark_method=landmark_method, m=m, h=h, epochs=epochs, batch_size=batch_size,
                    n_train=n_train, n_test=n_test, lrs=lrs, seeds=seeds, label_fraction=label_fraction,
                    falkon_lam=falkon_lam, ggn_damping=ggn_damping, ggn_cg_iter=ggn_cg_iter,
                    newton_damping=newton_damping, newton_cg_iter=newton_cg_iter,
                    n_eval_views=n_eval_views, hvp_losses=hvp_losses, dtype=dtype, cpu_threads=cpu_threads),
)

# %% [markdown]
# ## Summary
#
# * The five optimisers share data, landmarks, PC initialisation and augmented batches; the
#   objective is measured on fixed views after each epoch, so every curve is comparable.
# * The verdicts above are this run's: read them next to the seed spread and the machine's
#   timing noise. A Newton-CG epoch costs roughly `1 + cg_iter × (HVP/gradient) + line-search
#   evaluations` gradients, which the HVP table quantifies.
# * A lower SSL objective is not automatically a better linear probe: the probe column shows
#   whether the extra optimisation pays off on labels.
#
# ## Exercises
#
# 1. Add `"simclr"` to `losses`. Its GGN is the softmax Hessian (Derivations §Gauss–Newton
#    products); does Newton-CG still reach a lower objective per epoch, and per second?
# 2. Raise `ggn_cg_iter` from 5 to 20. How does `adam_ggn` change per epoch and per second?
#    Why does Adam's per-coordinate normalisation partly undo any preconditioner?
# 3. Run `adam_falkon` with `optimizer="sgd"` in `krepes_lib.train.fit` (preconditioned
#    gradient descent, as in FALKON) and compare it with Adam on P∇L.
