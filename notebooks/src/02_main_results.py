# %% [markdown]
# # Main results: the eight losses against PC initialisation and raw features
#
# **What this reproduces.** The main experiment of KREPES v1 (spec §1, §3, §4, §7): a
# Nyström-restricted kernel model $f(x) = \tilde A^\top k_x + \gamma$ (eq. {eq}`model`) is
# initialised with its principal components (eq. {eq}`nys-pc`, in whitened coordinates,
# eq. {eq}`nys-whiten`) and trained with Adam under each of the eight self-supervised and
# unsupervised losses of the *Derivations* chapter — KPCA ({eq}`kpca-loss`), the kernel
# auto-encoder ({eq}`kae-loss`), simple contrastive ({eq}`sc-loss`), spectral contrastive
# ({eq}`spec-loss`), SimCLR ({eq}`simclr-loss`), Barlow Twins ({eq}`bt-loss`), VICReg
# ({eq}`vic-loss`) and BYOL ({eq}`byol-loss`). Each representation is scored by
#
# * the **linear-probe** accuracy on a held-out split, with a logistic regression trained on a
#   stratified `label_fraction` of the training split (10 % labels by default, the protocol of
#   spec §7), and
# * the **k-NN** accuracy (k = 20, cosine) on the same held-out split, using every training
#   embedding,
#
# next to two baselines: the same linear probe on the **raw features** (same labelled subset)
# and the **PC initialisation without training** (the very model before `fit`). We report
# mean ± standard deviation over seeds and the parameter count $m h + h$.
#
# **Setting, and how it differs from the paper.** The paper trains on empirical NTKs of
# SSL-pretrained networks (which ones is not public) with $m = 2000$ landmarks and reports
# 89.54–90.31 % linear-probe accuracy on CIFAR-10 with Barlow Twins (v1). Here the kernel is
# an RBF kernel on the raw inputs (bandwidth by the median heuristic), on the data available
# offline: scikit-learn's digits, MNIST (the 10k test set, split into train/test), the 5k MNIST
# training subset (split), Adult (its official train/test split, subsampled) and CoverType
# (split; offline this is the 15,120-row Kaggle subset, the full UCI file is used when it has
# been fetched); `datasets` also accepts `cifar10` (official split, RBF on raw pixels).
# Landmarks are drawn by k-means++ seeding from the training split. Augmentations are the
# project's (the paper's are not public): pad-and-shift, noise and erasing for images,
# SCARF-style column corruption for tables; KPCA and KAE see one un-augmented view, as their
# definitions (spec §3) have no second view. Adam's learning rate is the spec's default
# (1e-3, §4) and the loss hyper-parameters are the project defaults of spec §3
# (`krepes_lib.defaults`); the batch size, the probe's regularisation (`C = 1`) and k = 20 are
# our choices. The defaults below run in seconds; the `quick` and `paper`
# profiles of `krepes reproduce` run the full grid.

# %% tags=["parameters"]
datasets = ["digits", "adult"]  # any of: digits, mnist_test, mnist_5k, adult, covtype, cifar10
losses = ["kpca", "kae", "simple_contrastive", "spectral_contrastive", "simclr",
          "barlow_twins", "vicreg", "byol"]  # names in krepes_lib.losses.NAMES
kernel = "rbf"  # any of krepes_lib.kernels.KERNELS (rbf/laplacian use the median heuristic)
m = 60  # landmarks (k-means++ from the training split; capped at the training size)
h = 16  # representation dimensions
epochs = 2  # Adam epochs
seeds = [0]  # each seed draws landmarks, batches, augmentations and the labelled subset
batch_size = 128  # samples per batch (two views each)
lr = 1e-3  # Adam learning rate (spec §4 default)
n_train = 1000  # training rows per dataset (None: all available)
n_test = 400  # held-out rows per dataset (None: the official test split, else 20 % of rows)
label_fraction = 0.1  # share of each class of the training split that the probe sees labelled
probe_every = 1  # log the probe every this many epochs (the last epoch is always probed)

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from krepes_lib import data, losses as LOSSES
from krepes_lib.augment import make_augmenter
from krepes_lib.backend import default_xp, to_device, to_host
from krepes_lib.evaluate import (KNN_K, count_parameters, knn_accuracy, labelled_subset,
                                 linear_probe, raw_feature_probe)
from krepes_lib.kernels import make_kernel, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.results import save_figure, save_results
from krepes_lib.train import SINGLE_VIEW, fit

with warnings.catch_warnings():  # fit's progress bar module warns when ipywidgets is absent
    warnings.simplefilter("ignore")
    import tqdm.auto  # noqa: F401

xp = default_xp()  # CuPy on a GPU, NumPy otherwise
print("array backend:", xp.__name__)
unknown = sorted(set(losses) - set(LOSSES.NAMES))
assert not unknown, f"unknown loss(es) {unknown}; choose from {LOSSES.NAMES}"

# %% [markdown]
# ## Data: training and held-out splits
#
# Datasets with an official split (Adult, CIFAR-10) use it, subsampled to `n_train` /
# `n_test` rows (stratified). The others are split once (stratified, split seed 0, the same
# for every training seed): `n_test` held-out rows (20 % of the rows when `n_test` is None)
# and `n_train` training rows (the rest when None); when the dataset is smaller than
# `n_train + n_test` both are scaled down in proportion (only the training split when
# `n_test` is None). Table
# features arrive standardised (numeric) and one-hot (categorical) from `krepes_lib.data`;
# images as pixels in [0, 1].

# %%
OFFICIAL_SPLIT = {"adult", "cifar10", "mnist", "fashion_mnist"}
LABELS = {"digits": "digits", "mnist_test": "MNIST 10k test set (split)",
          "mnist_5k": "MNIST 5k train subset (split)", "adult": "Adult (official split)",
          "covtype": "CoverType subset (split)", "cifar10": "CIFAR-10 (official split)"}


def subset(D, n, seed):
    """Stratified subset of n rows of D (all rows when n is None or n >= len(D))."""
    if n is None or n >= len(D):
        return D.X, D.y
    idx = data.stratified_indices(D.y, n, seed)
    return D.X[idx], D.y[idx]


def load_split(name):
    if name in OFFICIAL_SPLIT:
        tr, te = data.load(name, split="train"), data.load(name, split="test")
        (Xtr, ytr), (Xte, yte) = subset(tr, n_train, 0), subset(te, n_test, 0)
        return tr, Xtr, ytr, Xte, yte
    D = data.load(name)
    N = len(D)
    nte = round(0.2 * N) if n_test is None else int(n_test)
    ntr = N - nte if n_train is None else int(n_train)
    if ntr + nte > N:
        if n_test is not None:  # both sizes given: scale both down, keeping their ratio
            nte = int(N * nte / (ntr + nte))
        ntr = N - nte
    te_idx = data.stratified_indices(D.y, nte, 0)
    rest = np.setdiff1d(np.arange(N), te_idx)
    tr_idx = rest[data.stratified_indices(D.y[rest], min(ntr, rest.size), 1)]
    return D, D.X[tr_idx], D.y[tr_idx], D.X[te_idx], D.y[te_idx]


splits = {}
print(f"{'dataset':<12}{'d':>6}{'C':>4}{'n_train':>9}{'n_test':>8}{'labelled':>10}{'chance':>8}  source")
for ds in datasets:
    D, Xtr, ytr, Xte, yte = load_split(ds)
    n_lab = labelled_subset(ytr, label_fraction, 0).size
    chance = np.bincount(yte).max() / yte.size  # majority-class accuracy on the held-out split
    splits[ds] = dict(D=D, Xtr=Xtr, ytr=ytr, Xte=Xte, yte=yte, chance=float(chance),
                      n_labelled=int(n_lab), C=len(D.classes))
    kind = f"image {D.image_shape}" if D.image_shape else "table"
    print(f"{ds:<12}{Xtr.shape[1]:>6}{len(D.classes):>4}{len(ytr):>9}{len(yte):>8}{n_lab:>10}"
          f"{chance:>8.3f}  {LABELS.get(ds, ds)}, {kind}, {D.info.get('format', '')}".rstrip(", "))

# %% [markdown]
# ## Training every loss on every dataset
#
# For each dataset and seed: $m$ landmarks by k-means++ seeding (eq. {eq}`lm-kmeanspp`) from
# the training split, the Nyström basis (eq. {eq}`nys-eig`), and one model per loss, each
# starting from the PC initialisation $W_0 = [I_h; 0]$. The PC-initialised model is also
# probed before any training: that is the *PC init* baseline. The KAE model carries its
# decoder $B$ and BYOL its predictor $P$ and EMA target; neither is counted in the parameter
# count (they are used only in training). The probe of every `probe_every`-th epoch is
# logged for the curves below.

# %%
def make_kern(name, X):
    if name in ("rbf", "laplacian"):
        return make_kernel(name, sigma=median_sigma(X))
    return make_kernel(name)


def scores(Ztr, Zte, S, seed):
    """(linear-probe accuracy, k-NN accuracy) of embeddings on the held-out split."""
    probe = linear_probe(Ztr, S["ytr"], Zte, S["yte"], label_fraction=label_fraction, seed=seed)
    knn = knn_accuracy(Ztr, S["ytr_dev"], Zte, S["yte_dev"], k=min(KNN_K, Ztr.shape[0]))
    return probe, knn


# runs[ds, method] = list over seeds of dicts (probe, knn, params, seconds, history)
runs = {}
setup = {}
t_start = time.perf_counter()
for ds in datasets:
    S = splits[ds]
    Xtr, Xte = to_device(S["Xtr"], xp), to_device(S["Xte"], xp)
    S["ytr_dev"], S["yte_dev"] = to_device(S["ytr"], xp), to_device(S["yte"], xp)
    kern = make_kern(kernel, S["Xtr"])
    aug = make_augmenter(S["D"])  # image augmenter for images, table augmenter for tables
    m_ds = min(m, Xtr.shape[0])  # k-means++ picks distinct training rows
    if m_ds < m:
        print(f"{ds}: m capped at the {m_ds} training rows")
    # raw features: the same labelled subset per seed; k-NN does not depend on the seed
    raw_knn = knn_accuracy(Xtr, S["ytr_dev"], Xte, S["yte_dev"], k=min(KNN_K, Xtr.shape[0]))
    for seed in seeds:
        raw_probe = raw_feature_probe(S["Xtr"], S["ytr"], S["Xte"], S["yte"],
                                      label_fraction=label_fraction, seed=seed)
        runs.setdefault((ds, "raw features"), []).append(dict(probe=raw_probe, knn=raw_knn))
        sel = select_landmarks(Xtr, m_ds, method="kmeans++", seed=seed)
        nys = Nystrom(kern, sel.points)
        pc = NystromModel(nys, h=h)
        p0, k0 = scores(pc.embed(Xtr), pc.embed(Xte), S, seed)
        runs.setdefault((ds, "PC init"), []).append(
            dict(probe=p0, knn=k0, params=count_parameters(pc)))
        setup[ds] = dict(m=nys.m, rank=nys.rank, kernel=repr(kern))
        for name in losses:
            model = NystromModel(nys, h=h, decoder=(name == "kae"), predictor=(name == "byol"))
            last = {}

            def probe_fn(mdl, S=S, seed=seed, last=last):
                last["Ztr"], last["Zte"] = mdl.embed(Xtr), mdl.embed(Xte)
                return linear_probe(last["Ztr"], S["ytr"], last["Zte"], S["yte"],
                                    label_fraction=label_fraction, seed=seed)

            hist = fit(model, Xtr, name, epochs=epochs, batch_size=batch_size, seed=seed, lr=lr,
                       augment=None if name in SINGLE_VIEW else aug, eval_fn=probe_fn,
                       eval_every=max(1, int(probe_every)), progress=False)
            if epochs > 0:  # fit probed the last epoch; its embeddings are in `last`
                p = hist.probe[-1]
                k = knn_accuracy(last["Ztr"], S["ytr_dev"], last["Zte"], S["yte_dev"],
                                 k=min(KNN_K, Xtr.shape[0]))
            else:
                p, k = scores(model.embed(Xtr), model.embed(Xte), S, seed)
            runs.setdefault((ds, name), []).append(dict(
                probe=p, knn=k, params=count_parameters(model), seconds=float(sum(hist.time)),
                loss=list(hist.loss), probe_curve=[p0] + list(hist.probe),
                W_moved=float(to_host(xp.abs(model.params["W"] - pc.params["W"]).max()))))
    print(f"{ds}: {nys!r}; raw k-NN {raw_knn:.3f}; done after {time.perf_counter() - t_start:.1f} s")
total_seconds = time.perf_counter() - t_start

# %% [markdown]
# ## Results table
#
# Accuracies in percent on the held-out split, mean ± standard deviation over the seeds
# (population std; 0 with one seed). Δ is the change of the probe accuracy against the PC
# initialisation, in points. Parameters are those of $(\tilde A, \gamma)$: $m h + h$.
# "train s" is the training wall time of one fit (sum over its epochs, device-synchronised,
# probes excluded; mean over seeds).

# %%
METHODS = ["raw features", "PC init"] + list(losses)


def ms(ds, method, key):
    v = np.array([r[key] for r in runs[ds, method]], dtype=float)
    return float(v.mean()), float(v.std())


def pct(mean_std):
    return f"{100 * mean_std[0]:.2f} ± {100 * mean_std[1]:.2f}"


rows = []
for ds in datasets:
    pc_probe = ms(ds, "PC init", "probe")[0]
    for method in METHODS:
        probe, knn = ms(ds, method, "probe"), ms(ds, method, "knn")
        params = runs[ds, method][0].get("params")
        secs = ms(ds, method, "seconds")[0] if "seconds" in runs[ds, method][0] else None
        rows.append(dict(
            dataset=ds, method=method, probe=pct(probe), knn=pct(knn),
            delta=("—" if method in ("raw features", "PC init")
                   else f"{100 * (probe[0] - pc_probe):+.2f}"),
            params="—" if params is None else f"{params:,}",
            seconds="—" if secs is None else f"{secs:.1f}",
            probe_mean=probe[0], probe_std=probe[1], knn_mean=knn[0], knn_std=knn[1]))

header = ["dataset", "method", "probe %", "k-NN %", "Δ probe vs PC", "params", "train s"]
keys = ["dataset", "method", "probe", "knn", "delta", "params", "seconds"]
widths = [12, 22, 16, 16, 14, 9, 7]
print(f"{len(seeds)} seed(s), m = {m}, h = {h}, {epochs} epochs, batch {batch_size}, lr {lr}, "
      f"{label_fraction:.0%} labels, {kernel} kernel; total {total_seconds:.0f} s")
print("".join(f"{c:<{w}}" for c, w in zip(header, widths)))
for r in rows:
    print("".join(f"{str(r[k]):<{w}}" for k, w in zip(keys, widths)))

md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
md += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
display(Markdown("\n".join(md)))

# %% [markdown]
# ## Probe accuracy per loss and dataset
#
# Markers are the mean over seeds, bars one standard deviation; the dashed line is the PC
# initialisation (shaded: its spread over seeds) and the dotted line the raw-feature probe.

# %%
ncol = min(3, len(datasets))
nrow = -(-len(datasets) // ncol)
fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 4.4 * nrow), squeeze=False)
x = np.arange(len(losses))
for ax, ds in zip(axes.ravel(), datasets):
    mean = [100 * ms(ds, name, "probe")[0] for name in losses]
    std = [100 * ms(ds, name, "probe")[1] for name in losses]
    ax.errorbar(x, mean, yerr=std, fmt="o", capsize=3, color="C0", label="trained")
    pc_m, pc_s = (100 * v for v in ms(ds, "PC init", "probe"))
    ax.axhline(pc_m, ls="--", color="C1", label="PC init (no training)")
    ax.axhspan(pc_m - pc_s, pc_m + pc_s, color="C1", alpha=0.15)
    ax.axhline(100 * ms(ds, "raw features", "probe")[0], ls=":", color="C2", label="raw features")
    ax.set_xticks(x, losses, rotation=60, ha="right")
    ax.set_xlabel("loss")
    ax.set_ylabel(f"linear-probe accuracy (%), {label_fraction:.0%} labels")
    ax.set_title(f"{ds} (m = {setup[ds]['m']}, h = {h})")
for ax in axes.ravel()[len(datasets):]:
    ax.set_visible(False)
axes[0][0].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "02_main_results_probe")
plt.show()

# %% [markdown]
# ## Training curves
#
# Top: the training objective (mean over the epoch's batches, loss on $Z$ plus the RKHS
# penalty of simple contrastive) per loss; the scales differ between losses, so each panel
# has its own axis. Bottom: the linear-probe accuracy during training, epoch 0 being the PC
# initialisation. Mean over seeds.

# %%
ncol = min(4, len(losses))
nrow = -(-len(losses) // ncol)
fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
for ax, name in zip(axes.ravel(), losses):
    for i, ds in enumerate(datasets):
        curve = np.mean([r["loss"] for r in runs[ds, name]], axis=0)
        ax.plot(np.arange(1, len(curve) + 1), curve, marker=".", color=f"C{i}", label=ds)
    ax.set_title(name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training objective")
for ax in axes.ravel()[len(losses):]:
    ax.set_visible(False)
axes[0][0].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "02_main_results_loss_curves")
plt.show()

ncol = min(3, len(datasets))
nrow = -(-len(datasets) // ncol)
fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.4 * nrow), squeeze=False)
for ax, ds in zip(axes.ravel(), datasets):
    for j, name in enumerate(losses):
        curves = np.array([r["probe_curve"] for r in runs[ds, name]], dtype=float)
        ok = np.isfinite(curves).all(axis=0)  # epochs that were probed
        ax.plot(np.flatnonzero(ok), 100 * curves[:, ok].mean(axis=0), marker=".",
                color=f"C{j % 10}", label=name)
    ax.set_xlabel("epoch (0 = PC initialisation)")
    ax.set_ylabel("linear-probe accuracy (%)")
    ax.set_title(ds)
for ax in axes.ravel()[len(datasets):]:
    ax.set_visible(False)
axes[0][0].legend(fontsize=7, loc="best")
fig.tight_layout()
save_figure(fig, "02_main_results_probe_curves")
plt.show()

# %% [markdown]
# ## What must hold
#
# The notebook's test (nbval runs it at the default parameters). These are checks of the
# pipeline, not of the paper's claim: every representation — trained, PC-initialised or raw —
# classifies the held-out split above chance (chance = the majority-class share, 10 % for
# digits, about 75 % for Adult; the probe must close a tenth of the gap from chance to 100 %,
# the k-NN a twentieth, and on the ten digit classes the probe must exceed 70 %), the
# parameter count is $m h + h$, every logged loss is
# finite, and training moved the parameters away from the PC initialisation.

# %%
for ds in datasets:
    chance = splits[ds]["chance"]
    margin = 0.1 * (1 - chance)  # a tenth of the way from chance to perfect
    floor = 0.7 if ds in ("digits", "mnist_test", "mnist_5k", "mnist") else 0.0  # digit images
    for method in METHODS:
        for r in runs[ds, method]:
            assert r["probe"] > max(chance + margin, floor), (ds, method, r["probe"], chance)
            assert r["knn"] > chance + margin / 2, (ds, method, r["knn"], chance)
    m_ds = setup[ds]["m"]
    for method in ["PC init"] + list(losses):
        for r in runs[ds, method]:
            assert r["params"] == m_ds * h + h, (ds, method, r["params"])
    for name in losses:
        for r in runs[ds, name]:
            assert len(r["loss"]) == epochs and np.isfinite(r["loss"]).all(), (ds, name, r["loss"])
            assert epochs == 0 or r["W_moved"] > 0, (ds, name)

# %% [markdown]
# ## What the numbers say
#
# Computed from the table above. A trained model counts as **higher** (or **lower**) than a
# baseline when its mean probe accuracy differs by more than a noise threshold $t$: the
# larger of the seed spread (the sum of the two standard deviations over seeds, when there
# are several seeds) and one binomial standard error of the held-out accuracy,
# $\sqrt{p(1-p)/n_{\mathrm{test}}}$ (the test split is the same for every seed, so seeds
# alone do not measure its sampling noise). Smaller differences are "within the noise". The
# comparison is also given paired: in how many seeds the trained model beat the baseline
# (both share the seed's landmarks and labelled subset).

# %%
def compare(ds, method, base, key="probe"):
    """(Δ mean, threshold t, verdict, seeds where method > base) for an accuracy."""
    (a, sa), (b, sb) = ms(ds, method, key), ms(ds, base, key)
    t = float(np.sqrt(b * (1 - b) / len(splits[ds]["yte"])))
    if len(seeds) > 1:
        t = max(t, sa + sb)
    d = a - b
    wins = sum(x[key] > y[key] for x, y in zip(runs[ds, method], runs[ds, base]))
    return d, t, "higher" if d > t else ("lower" if d < -t else "within"), wins


claims, lines = [], []
for ds in datasets:
    for base in ("PC init", "raw features"):
        res = {name: compare(ds, name, base) for name in losses}
        up = [n for n, r in res.items() if r[2] == "higher"]
        down = [n for n, r in res.items() if r[2] == "lower"]
        same = [n for n, r in res.items() if r[2] == "within"]
        mean_up = [n for n, r in res.items() if r[0] > 0]
        all_seeds = [n for n, r in res.items() if r[3] == len(seeds)]
        best = max(losses, key=lambda n: ms(ds, n, "probe")[0])
        b_m, b_s = ms(ds, base, "probe")
        t_range = sorted({round(100 * r[1], 2) for r in res.values()})
        t_text = f"{t_range[0]:.2f}" if len(t_range) == 1 else f"{t_range[0]:.2f}–{t_range[-1]:.2f}"
        detail = "; ".join(f"{n} {100 * r[0]:+.2f} ({r[3]}/{len(seeds)})" for n, r in res.items())
        lines.append(
            f"- **{ds}**, trained vs **{base}** ({100 * b_m:.2f} ± {100 * b_s:.2f} %; threshold "
            f"{t_text} points): higher for {len(up)}/{len(losses)} losses "
            f"[{', '.join(up) or 'none'}], lower for [{', '.join(down) or 'none'}], within the noise "
            f"for [{', '.join(same) or 'none'}]; mean higher for {len(mean_up)}/{len(losses)}, higher "
            f"in every seed for {len(all_seeds)}/{len(losses)}. Δ in points (seeds won): {detail}.")
        if base == "PC init":
            claim = (f"{ds}: training with the SSL/unsupervised losses improves the linear probe "
                     "over the PC initialisation")
            paper = "implied: v1 trains from the PC init (eNTK + Barlow Twins, CIFAR-10 89.54–90.31 %)"
        else:
            claim = f"{ds}: KREPES representations beat a linear probe on the raw features"
            paper = "v1: KREPES ≫ weak neural baselines (no raw-feature baseline reported)"
        if up and not down:
            verdict = f"holds for {len(up)}/{len(losses)} losses ({', '.join(up)})"
        elif up:
            verdict = f"mixed: higher for {', '.join(up)}; lower for {', '.join(down)}"
        elif down:
            verdict = f"does not hold here: lower for {', '.join(down)}, no loss higher"
        else:
            verdict = (f"not shown: no loss beyond the noise (mean higher for "
                       f"{len(mean_up)}/{len(losses)} losses)")
        claims.append(dict(
            claim=claim, paper=paper,
            ours=(f"{base} {100 * b_m:.2f}±{100 * b_s:.2f} %; best {best} "
                  f"{pct(ms(ds, best, 'probe'))} %; {len(seeds)} seed(s), noise threshold "
                  f"{t_text} points"),
            verdict=verdict))
    knn = {name: compare(ds, name, "PC init", "knn") for name in losses}
    lines.append(
        f"- **{ds}**, k-NN accuracy vs PC init ({pct(ms(ds, 'PC init', 'knn'))} %): higher for "
        f"[{', '.join(n for n, r in knn.items() if r[2] == 'higher') or 'none'}], lower for "
        f"[{', '.join(n for n, r in knn.items() if r[2] == 'lower') or 'none'}]; Δ in points: "
        + "; ".join(f"{n} {100 * r[0]:+.2f}" for n, r in knn.items()) + ".")

m_used = sorted({setup[ds]["m"] for ds in datasets})
claims.append(dict(
    claim="parameter count of the representation is m·h + h",
    paper="0.5–0.9M parameters at m = 2000 (v1), i.e. h ≈ 250–450 under m·h + h (our inference)",
    ours=", ".join(f"m={mm}: {mm * h + h:,}" for mm in m_used) + f" (h = {h})",
    verdict="holds (asserted for every model)"))
claims.append(dict(
    claim="CIFAR-10 linear probe with eNTK + Barlow Twins, m = 2000",
    paper="89.54–90.31 % (v1)",
    ours=(f"CIFAR-10 with an {kernel} kernel on raw pixels, Barlow Twins, m = {setup['cifar10']['m']}: "
          f"{pct(ms('cifar10', 'barlow_twins', 'probe'))} %"
          if "cifar10" in datasets and "barlow_twins" in losses
          else f"not run here (this run: {kernel} kernel on raw inputs of {', '.join(datasets)})"),
    verdict="not comparable (no eNTK of a pretrained network, smaller m and epochs)"))

print("\n".join(lines))
print()
rows_text = f"n_train ≤ {n_train}" if n_train else "all"
print(f"Differences from the paper's setting: {kernel} kernel on raw inputs instead of the eNTK "
      f"of an SSL-pretrained network; m = {m} landmarks (paper: 2000), h = {h}, {epochs} epochs, "
      f"{len(seeds)} seed(s), {rows_text} training rows per dataset; the project's augmentations. "
      "For context only, the paper's v1 CIFAR-10 probe is 89.54–90.31 % with eNTK + Barlow Twins.")
display(Markdown("\n".join(lines)))

# %%
table = {}
for r in rows:
    entry = {k: r[k] for k in ("probe_mean", "probe_std", "knn_mean", "knn_std")}
    entry["params"] = runs[r["dataset"], r["method"]][0].get("params")
    entry["seeds"] = [x["probe"] for x in runs[r["dataset"], r["method"]]]
    table[f"{r['dataset']}|{r['method']}"] = entry
save_results(
    "02_main_results",
    {"claims": claims, "table": table,
     "seconds_per_fit": {f"{ds}|{n}": ms(ds, n, "seconds")[0] for ds in datasets for n in losses},
     "total_seconds": total_seconds,
     "splits": {ds: {k: splits[ds][k] for k in ("chance", "n_labelled", "C")}
                | {"n_train": int(len(splits[ds]["ytr"])), "n_test": int(len(splits[ds]["yte"]))}
                for ds in datasets},
     "setup": setup},
    parameters=dict(datasets=datasets, losses=losses, kernel=kernel, m=m, h=h, epochs=epochs,
                    seeds=seeds, batch_size=batch_size, lr=lr, n_train=n_train, n_test=n_test,
                    label_fraction=label_fraction, probe_every=probe_every),
)
for c in claims:
    print(f"- {c['claim']}: {c['ours']} → {c['verdict']}")

# %% [markdown]
# ## Summary
#
# * Every loss of spec §3 trains end to end on the Nyström model from the PC initialisation,
#   with hand-derived gradients and no automatic differentiation; the table gives the
#   linear-probe and k-NN accuracies with their spread over seeds, and the cell above states
#   which (dataset, loss) pairs beat each baseline in this run.
# * The PC initialisation is a strong baseline, not a strawman: it is the top-$h$ Nyström
#   kernel PCA, already a good representation for a linear probe. Whether
#   a few epochs of self-supervised training improve on it depends on the loss and the data;
#   the claims above say so per dataset rather than assuming it.
# * The paper's headline numbers come from eNTKs of pretrained networks at $m = 2000$; this
#   notebook reproduces the *procedure* (landmarks → Nyström → PC init → loss → probe), not
#   those numbers.
#
# ## Exercises
#
# 1. Set `kernel = "ntk"` (the infinite-width ReLU network kernel, eq. {eq}`k-ntk`). Does the
#    ranking of the losses change? Does training now beat the PC initialisation more often?
# 2. Raise `epochs` and `lr` (e.g. 30 epochs, `lr = 1e-2`) on MNIST. Which losses keep
#    improving the probe and which degrade it (watch the k-NN column too)? Relate what you see
#    to the invariance terms of {eq}`bt-loss` and {eq}`vic-loss` and to the augmentations.
# 3. Set `label_fraction = 1.0`. How much of the gap between the losses and the raw-feature
#    probe was due to the 10 % label budget?
