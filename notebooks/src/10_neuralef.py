# %% [markdown]
# # NeuralEF vs Nyström: kernel eigenfunctions learned by networks
#
# **What this reproduces.** Seed 002 — Deng, Shi & Zhu, *NeuralEF: Deconstructing Kernels by
# Deep Neural Networks*, ICML 2022 — trains $k$ networks $\hat\psi_j$ with an EigenGame-style
# objective (seed eqs. 14–18; book {doc}`../neuralef`, eqs. {eq}`nef-loss`, {eq}`nef-grad`) to find
# the top eigenfunctions of a kernel, the object KREPES' PC initialisation takes from a Nyström
# eigendecomposition (eq. {eq}`nys-pc`). We reproduce, with the seed's numbers beside ours:
#
# 1. **Fig. 2 / App. C.1** — top eigenfunctions of the polynomial kernel $(x^\top x'+1.5)^4$ on
#    $U[-1,1]$ and the RBF kernel $\exp(-\lVert x-x'\rVert^2/2)$ on $U[-2,2]$ from $N = 64$ samples:
#    Nyström on the same samples, NeuralEF, against a large-$N$ Nyström ground truth; and
#    training time vs sample size with the crossover $N$ measured here. The seed gives these as
#    plots only (no numbers); its text says NeuralEF "delivers as good solutions as the Nyström
#    method" and that Nyström grows cubically while NeuralEF is "nearly constant" (seed §4.1).
#    **SpIN is not run**: it needs a Cholesky factor per step and an EMA of the Jacobian of
#    Σ_w (seed §2.3), a separate implementation we judged not cheap; the seed itself reports it
#    as less accurate and slower.
# 2. **Fig. 3** — two-moons (ReLU) and circles (Erf) projected by the top-3 eigenfunctions of
#    3-layer MLP-GP kernels. Our kernels are the closed forms (arc-cosine recursion, and the
#    Erf NN-GP recursion of eq. {eq}`nef-erf` added for this notebook) with the seed's priors
#    $\mathcal N(0, 2/\text{fan-in})$, bias $\mathcal N(0,1)$; the seed estimates them by Monte Carlo.
# 3. **Table 1** — MNIST, multinomial logistic regression on the top-10 eigenfunction projections:
#    seed **84.98 %** (NeuralEF, CNN-GP kernel), **78.00 %** (Nyström, polynomial
#    $(0.001x^\top x'+1)^{10}$), **77.55 %** (Nyström, RBF $\exp(-\lVert x-x'\rVert^2/200)$), Nyström on
#    6000 training images (seed App. B). Our CNN-GP kernel is a **documented substitute**: the
#    seed's architecture (Conv5-ReLU-MaxPool2-Conv5-ReLU-MaxPool2-Linear-ReLU-Linear, width 16)
#    with its priors, estimated from `cnn_gp_nets` random networks with the output layer
#    integrated analytically (the seed uses S = 2000 draws). Our eigenfunction networks are
#    the seed's kind — CNNs of the kernel's architecture with batch normalisation — made
#    narrower to fit a CPU budget, beside the MLPs of our first attempt. Because our kernel has
#    explicit features, Nyström on it is possible too (the seed's "N/A" row): it is the ceiling
#    of what this kernel's top-10 eigenfunctions give, so the table separates the kernel's
#    adequacy from the learner's gap.
# 4. **Figs. 4–5** — the NTK of a trained binary classifier (airplane vs automobile, CIFAR-10
#    test images; seed: ResNet-20, ours: a 2-conv CNN): top-10 eigenvalues, and the test kernel
#    matrix recovered by NeuralEF vs random features (eq. {eq}`nef-rf`, S = 10 directions = the
#    cost of k = 10 network passes) vs the exact Jacobian kernel; 2-means accuracy on the
#    projections (seed: **97.5 %** NeuralEF, **81.3 %** random features, **67.8 %** raw pixels).
#    The eigenvalue error is taken over the eigenvalues above the seed's own resolution limit
#    (1 % of the largest, seed §6), with the error over all ten beside it.
# 5. **The bridge** (not in the seed): NeuralEF eigenfunctions as KREPES' PC initialisation
#    (eq. {eq}`nef-bridge`): a trained model is folded into $B^\top\varphi(x)+\gamma$ and represents
#    a test point with k network passes instead of m kernel evaluations. Compared with the
#    Nyström PC init on MNIST and Adult: 10 %-label probe, training cost, test cost per point.
#
# **Claims are decided by rules fixed before the run** (written in each claim row): paired
# one-sided t-tests over `seeds` at α = 0.05 (a seed draws the networks' initialisation, the
# batches, random directions and landmarks), or a stated deterministic rule for timings.

# %% tags=["parameters"]
seeds = [0, 1]  # paired over seeds (networks, batches, random directions, landmarks)
k = 10  # eigenfunctions (seed: 10)
iterations = 200  # NeuralEF Adam steps for the classic and MLP-GP kernels (seed: 2000)
n_fig2 = 64  # samples of Fig. 2 (seed: 64)
n_truth = 500  # samples of the large-N Nyström ground truth
timing_ns = [64, 128, 256]  # sample sizes of the training-time curve
timing_iterations = 100  # NeuralEF steps in the timing curve (seed: 2000)
n_mlpgp = 200  # two-moons / circles points (seed: 1000)
n_mnist = 300  # MNIST training images (seed App. B: 6000 for Nyström)
n_mnist_test = 300  # MNIST test images
cnn_gp_nets = 4  # random CNNs of the Monte-Carlo CNN-GP kernel (seed: S of 2000)
mnist_learners = ["cnn", "mlp"]  # eigenfunction networks on MNIST, the first decides the seed's claims
mnist_iterations = 50  # NeuralEF steps on MNIST, each learner (seed: 20000)
mnist_cnn_widths = [4, 8]  # channels of each eigenfunction CNN's two convolutions (seed: 32, 64)
mnist_cnn_hidden = 16  # hidden units of each eigenfunction CNN (seed: 128)
mnist_width = 32  # width of each eigenfunction MLP on MNIST
n_cifar_train = 100  # airplane/automobile images for the classifier and NeuralEF
n_cifar_test = 32  # held-out test images of Fig. 4 (seed: 128)
cifar_epochs = 1  # classifier epochs
ntk_iterations = 50  # NeuralEF steps on the NTK
bridge_datasets = ["mnist"]  # "mnist" and/or "adult"
bridge_n_train = 300
bridge_n_test = 200
bridge_m = 50  # landmarks of both KREPES models
bridge_h = 8  # representation dimensions (NeuralEF uses h eigenfunctions too)
bridge_iterations = 50  # NeuralEF steps for the bridge
bridge_epochs = 1  # KREPES epochs after either initialisation (KPCA loss)
cpu_threads = 1  # host BLAS / torch threads

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from krepes_lib import data
from krepes_lib.backend import limit_host_threads
from krepes_lib.evaluate import linear_probe
from krepes_lib.kernels import RBF, Polynomial, median_sigma
from krepes_lib.studies import neuralef as NEF
from krepes_lib.studies.results import save_figure, save_results
from krepes_lib.claims import Claim, Control, NonInferiority, Paired, Threshold, decide, decide_check
from krepes_lib.timing import per_point

limit_host_threads(cpu_threads)
torch.set_num_threads(cpu_threads)
T_START = time.perf_counter()
claims = []


# %% [markdown]
# ## 1. Fig. 2: polynomial and RBF kernels in 1-D
#
# Ground truth: Nyström with `n_truth` samples (seed §4.1: Nyström "converges to the ground
# truth as the number of samples increases"). NeuralEF: k 3-layer MLPs of width 32 with sin/cos
# units (seed App. B), B = min(N, 256), Adam 1e-3. Agreement = |cos| with the truth on a grid.
# The degree-4 polynomial kernel in 1-D has rank 5, so only its top-5 eigenfunctions exist.

# %%
setups = {"polynomial": (Polynomial(degree=4, scale=1.0, coef0=1.5), -1.0, 1.0),
          "rbf": (RBF(sigma=1.0), -2.0, 2.0)}
fig2 = {}
for name, (kern, lo, hi) in setups.items():
    rng = np.random.default_rng(12345)
    truth = NEF.nystrom_eigenfunctions(kern, rng.uniform(lo, hi, (n_truth, 1)), k)
    grid = np.linspace(lo, hi, 200)[:, None]
    fig2[name] = [NEF.classic_kernel_run(kern, np.random.default_rng(s).uniform(lo, hi, (n_fig2, 1)), grid,
                                         truth, k=k, iterations=iterations, seed=s) for s in seeds]
    r = fig2[name]
    print(f"{name}: |cos| with the truth, mean over {len(seeds)} seeds (j = 1..{k})")
    print("  NeuralEF:", np.round(np.mean([x["cos_nef"] for x in r], 0), 3))
    print("  Nyström :", np.round(np.mean([x["cos_nys"] for x in r], 0), 3))
    print("  eigenvalues truth   :", np.round(r[0]["mu_truth"], 4))
    print("  eigenvalues NeuralEF:", np.round(np.mean([x["mu_nef"] for x in r], 0), 4))
    print("  eigenvalues Nyström :", np.round(np.mean([x["mu_nys"] for x in r], 0), 4))

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for ax, (name, (kern, lo, hi)) in zip(axes, setups.items()):
    r = fig2[name][0]
    grid = np.linspace(lo, hi, 200)
    for j, c in zip(range(3), ["C0", "C1", "C2"]):
        sgn = lambda P: np.sign((P[:, j] * r["psi_truth"][:, j]).sum())  # noqa: E731 (align signs for plotting)
        ax.plot(grid, r["psi_truth"][:, j], color=c, lw=3, alpha=0.35, label=f"truth ψ{j + 1}" if j == 0 else None)
        ax.plot(grid, sgn(r["psi_nys"]) * r["psi_nys"][:, j], color=c, ls=":", label="Nyström N=%d" % n_fig2 if j == 0 else None)
        ax.plot(grid, sgn(r["psi_nef"]) * r["psi_nef"][:, j], color=c, ls="--", label="NeuralEF" if j == 0 else None)
    ax.set_title(f"{name}: top-3 eigenfunctions (seed {seeds[0]})")
    ax.set_xlabel("x")
    ax.set_ylabel("ψ_j(x)")
    ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "10_neuralef_fig2")
plt.show()

# %%
for name in setups:
    a = [x["cos_nef"][:3].min() for x in fig2[name]]
    b = [x["cos_nys"][:3].min() for x in fig2[name]]
    ov = [x["overlap_nef"] for x in fig2[name]]
    claims += decide([Claim(
        f"Fig. 2 ({name}): NeuralEF recovers the top-3 eigenfunctions as well as Nyström on the same {n_fig2} samples",
        "NeuralEF 'delivers as good solutions as the Nyström method' (seed §4.1, Fig. 2; plots only)", a=a, b=b,
        what="a, b = min over j ≤ 3 of |cos| with the truth (NeuralEF, Nyström)",
        ours=f"min_j≤3 |cos| with the truth: NeuralEF {np.mean(a):.3f}, Nyström {np.mean(b):.3f}; all 10: NeuralEF |cos| "
             f"{np.round(np.mean([x['cos_nef'] for x in fig2[name]], 0), 2).tolist()}, span overlap of the top 10 {np.mean(ov):.2f}")],
        NonInferiority(margin=0.05, reference="Nyström"))
    assert np.min(b) > 0.9, "the Nyström reference must match the ground truth on the top-3"

# %% [markdown]
# ### Training time vs sample size (Fig. 2 right)
#
# Nyström time = kernel matrix + `scipy.linalg.eigh(..., subset_by_index=[N−k, N−1])` (seed
# App. B); NeuralEF time = `timing_iterations` steps. One run, `cpu_threads` thread(s), float32
# networks / float64 Nyström. Rule (fixed before the run): the log-log slope over the three
# largest N is ≥ 2 for Nyström and ≤ 0.3 for NeuralEF.

# %%
timing = NEF.timing_vs_n(setups["polynomial"][0], -1.0, 1.0, timing_ns, k=k, iterations=timing_iterations,
                         seed=seeds[0])
for n, a, b in zip(timing["ns"], timing["seconds_nys"], timing["seconds_nef"]):
    print(f"N = {int(n):>6}: Nyström {a:8.3f} s   NeuralEF {b:7.3f} s")
print(f"log-log slopes: Nyström {timing['slope_nys']:.2f}, NeuralEF {timing['slope_nef']:.2f}; "
      f"crossover N ≈ {timing['crossover_n']:.0f} ({timing['crossover_how']})")
claims.append(decide_check(
    "Fig. 2 right: Nyström training time grows cubically, NeuralEF's is nearly constant in N",
    "Nyström 'grows cubically', NeuralEF 'nearly constant' (seed Fig. 2, §4.1; plot only)",
    f"slopes {timing['slope_nys']:.2f} (Nyström) and {timing['slope_nef']:.2f} (NeuralEF, {timing_iterations} steps); "
    f"crossover N ≈ {timing['crossover_n']:.0f} ({timing['crossover_how']})",
    "deterministic rule on one timed run: log-log slope over the 3 largest N ≥ 2 (Nyström) and ≤ 0.3 (NeuralEF)",
    holds=timing["slope_nys"] >= 2 and timing["slope_nef"] <= 0.3))
print(claims[-1]["verdict"])

fig, ax = plt.subplots(figsize=(5, 3.4))
ax.loglog(timing["ns"], timing["seconds_nys"], "o-", label="Nyström (eigh)")
ax.loglog(timing["ns"], timing["seconds_nef"], "s-", label=f"NeuralEF ({timing_iterations} steps)")
ax.axvline(timing["crossover_n"], color="grey", ls=":", label="crossover")
ax.set_xlabel("sample size N")
ax.set_ylabel("training time (s)")
ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "10_neuralef_timing")
plt.show()

# %% [markdown]
# ## 2. Fig. 3: MLP-GP kernels on two-moons (ReLU) and circles (Erf)
#
# `n_mlpgp` points; ground truth = the exact eigendecomposition of the kernel matrix on those
# points (q is their empirical distribution); NeuralEF with k = 3 MLPs of width 32.
# Rule: one-sided t-test over seeds that min_{j≤3} |cos| > 0.9. When two eigenvalues nearly
# coincide (circles: μ₂ ≈ μ₃), single eigenfunctions are not identifiable and only their span is;
# we therefore also print the span overlap (`subspace_overlap`, 1 = same span). This measure was
# added after our first quick run showed the near-degeneracy; the verdict stays with the rule above.

# %%
from sklearn.datasets import make_circles, make_moons  # noqa: E402

toy = {"two-moons / ReLU": (make_moons(n_mlpgp, noise=0.1, random_state=0), "relu"),
       "circles / Erf": (make_circles(n_mlpgp, noise=0.05, factor=0.5, random_state=0), "erf")}
fig3 = {}
for name, ((X2, y2), act) in toy.items():
    kern = NEF.mlp_gp_kernel(act)
    truth = NEF.nystrom_eigenfunctions(kern, X2, 3)
    fig3[name] = [NEF.classic_kernel_run(kern, X2, X2, truth, k=3, iterations=iterations, seed=s) for s in seeds]
    a = [x["cos_nef"].min() for x in fig3[name]]
    ov = [x["overlap_nef"] for x in fig3[name]]
    claims += decide([Claim(
        f"Fig. 3 ({name}): NeuralEF finds the top-3 eigenfunctions of the MLP-GP kernel",
        "appealing 3-D projections (seed Fig. 3; plots only)", a=a, what="value = min_j≤3 |cos| with the exact eigenvectors",
        ours=f"min_j≤3 |cos| with the exact eigenvectors {np.mean(a):.3f} (span overlap of the top 3, "
             f"added after the first quick run: {np.mean(ov):.3f}); eigenvalues NeuralEF "
             f"{np.round(np.mean([x['mu_nef'] for x in fig3[name]], 0), 3).tolist()} vs exact "
             f"{np.round(fig3[name][0]['mu_truth'], 3).tolist()}")], Threshold("greater", threshold=0.9))

fig = plt.figure(figsize=(10, 4))
for i, (name, ((X2, y2), act)) in enumerate(toy.items()):
    ax = fig.add_subplot(1, 2, i + 1, projection="3d")
    P = fig3[name][0]["psi_nef"]
    ax.scatter(P[:, 0], P[:, 1], P[:, 2], c=y2, cmap="coolwarm", s=5)
    ax.set_title(f"{name}: NeuralEF top-3")
    ax.set_xlabel("ψ1")
    ax.set_ylabel("ψ2")
    ax.set_zlabel("ψ3")
fig.tight_layout()
save_figure(fig, "10_neuralef_fig3")
plt.show()

# %% [markdown]
# ## 3. Table 1: MNIST, logistic regression on top-10 eigenfunction projections
#
# `n_mnist` training images (seed: 6000 for Nyström), pixels in [0, 1], the MNIST test set;
# logistic regression on all training labels (`linear_probe` with `label_fraction=1`); the top-10
# eigenpairs by Lanczos (`eigsh`: the same eigenpairs as the seed's `eigh`, without its O(N³) cost).
# Our CNN-GP kernel is one Monte-Carlo draw (seed 0), the same for every seed; the seeds draw the
# eigenfunction networks and their batches.
#
# **The kernel's ceiling.** Nyström on the same kernel and the same images gives this kernel's
# top-10 eigenfunctions as exactly as the images allow: a NeuralEF row can only approach it. The
# table therefore answers two questions apart: is the kernel adequate (Nyström on it vs the classic
# kernels), and how far is the learner from its kernel (NeuralEF vs that ceiling)? Learners
# (`mnist_learners`, `mnist_iterations` steps each, seed: 20,000): **cnn** — k CNNs of the kernel's
# architecture with batch normalisation, as the seed (App. B; widths `mnist_cnn_widths`,
# `mnist_cnn_hidden`, seed 32, 64, 128); **mlp** — k 3-layer ReLU MLPs of `mnist_width`, our first
# attempt.
#
# Rules, fixed before the run: (a) the seed's comparison — one-sided paired t-test over seeds that
# NeuralEF with the first learner beats each classic Nyström row (Holm over the two); (b) the
# kernel's adequacy — deterministic rows: Nyström on our kernel beats a classic row when the
# difference exceeds 1.96 binomial standard errors of a difference of two accuracies on the test
# images (and does not when it is below −1.96); (c) the learner's gap — non-inferiority of each
# NeuralEF row to the kernel's ceiling, margin 2 points; (d) CNN vs MLP eigenfunctions, one-sided
# paired t-test.

# %%
tr = data.load("mnist", split="train", n=n_mnist, seed=0)
te = data.load("mnist_test", n=n_mnist_test, seed=0)
table1 = {}
for name, kern in {"polynomial": Polynomial(degree=10, scale=0.001, coef0=1.0), "rbf": RBF(sigma=10.0)}.items():
    mu, psi, sec = NEF.nystrom_eigenfunctions(kern, tr.X, 10, solver="lanczos")
    table1[f"Nyström ({name})"] = linear_probe(psi(tr.X), tr.y, psi(te.X), te.y, label_fraction=1.0)
    print(f"Nyström {name}: kernel matrix + top-10 eigenpairs {sec:.1f} s")
cnn_gp = NEF.cnn_gp_features((28, 28), n_nets=cnn_gp_nets, seed=0)
mu_gp, psi_gp, sec_gp = NEF.nystrom_eigenfunctions(cnn_gp, tr.X, 10, solver="lanczos")
ceiling = linear_probe(psi_gp(tr.X), tr.y, psi_gp(te.X), te.y, label_fraction=1.0)
table1["Nyström (our MC CNN-GP)"] = ceiling
runs = {net: [NEF.projection_run(tr.X, tr.y, te.X, te.y, cnn_gp, net=net, k=10, iterations=mnist_iterations,
                                 image_shape=(28, 28), widths=mnist_cnn_widths, hidden=mnist_cnn_hidden,
                                 width=mnist_width, seed=s) for s in seeds] for net in mnist_learners}
acc_nef = {net: [r["acc"] for r in rs] for net, rs in runs.items()}
label = {net: f"NeuralEF {net.upper()} (our MC CNN-GP)" for net in runs}
for net in runs:
    table1[label[net]] = float(np.mean(acc_nef[net]))
X_time = te.X[:200].copy()  # test cost per point: Nyström eq. (8) needs the kernel row against all N
sec_nys = [per_point(psi_gp, X_time[::-1] + np.float32(s), repeats=1) for s in seeds]  # fresh blocks: no cache
seed_table1 = {"Nyström (polynomial)": "78.00 %", "Nyström (rbf)": "77.55 %", "Nyström (our MC CNN-GP)": "N/A",
               **{label[net]: ("84.98 % (CNN-GP)" if net == "cnn" else "—") for net in runs}}
print(f"{'method':<30}{'seed':>18}{'ours':>10}")
for key, val in table1.items():
    print(f"{key:<30}{seed_table1[key]:>18}{100 * val:>9.2f}%")
for net, rs in runs.items():
    print(f"{label[net]}: {rs[0]['n_params']:,} parameters per eigenfunction, {mnist_iterations} steps; per seed "
          f"accuracy {[round(100 * r['acc'], 2) for r in rs]} %, training {[round(r['seconds']) for r in rs]} s wall / "
          f"{[round(r['cpu_seconds']) for r in rs]} CPU-s, loss first → last record "
          f"{[(round(r['loss_first'], 3), round(r['loss_last'], 3)) for r in rs]}")
print("top-10 eigenvalues of the kernel (Nyström):", np.round(mu_gp, 4))
print(f"NeuralEF {mnist_learners[0]} μ̂ (seed {seeds[0]}):", np.round(runs[mnist_learners[0]][0]["mu"], 4))

# %%
first, n_before = mnist_learners[0], len(claims)
ceiling_txt = (f"the kernel's ceiling (Nyström top-10 on the same kernel and images) {100 * ceiling:.2f} %, "
               f"NeuralEF {first.upper()} {100 * np.mean(acc_nef[first]):.2f} %")
claims += decide([Claim(
    f"Table 1: NeuralEF on a CNN-GP kernel beats {name} (top-10 projections, LR accuracy)", paper, a=acc_nef[first],
    b=table1[name], what=f"d = acc(NeuralEF {first.upper()}, {mnist_iterations} steps) − acc({name})",
    ours=f"{100 * np.mean(acc_nef[first]):.2f} % vs {100 * table1[name]:.2f} %; {ceiling_txt}")
    for name, paper in (("Nyström (polynomial)", "84.98 % vs 78.00 %"), ("Nyström (rbf)", "84.98 % vs 77.55 %"))],
    Paired("greater"), family="Table 1, the seed's comparison", scale=100, digits=2, unit=" points")
n_te = len(te.y)
for name in ("Nyström (polynomial)", "Nyström (rbf)"):
    diff = ceiling - table1[name]
    se = np.sqrt((ceiling * (1 - ceiling) + table1[name] * (1 - table1[name])) / n_te)
    claims.append(decide_check(
        f"Table 1: our MC CNN-GP kernel is adequate — Nyström on it beats {name}",
        "the seed's 'N/A' (no closed form with max-pooling); its kernels: CNN-GP 84.98 % by NeuralEF",
        f"{100 * ceiling:.2f} % vs {100 * table1[name]:.2f} % (difference {100 * diff:+.2f} points, 1.96 SE = "
        f"{100 * 1.96 * se:.2f} on {n_te} test images)",
        "deterministic rows: holds if the difference > 1.96 binomial SE of a difference of two accuracies, "
        "does not hold if < −1.96 SE", holds=diff > 1.96 * se, fails=diff < -1.96 * se,
        why_inconclusive="within ±1.96 SE"))
claims += decide([Claim(
    f"Table 1: NeuralEF ({net.upper()} eigenfunctions, {mnist_iterations} steps) reaches the ceiling of its kernel",
    "— (ours: what the kernel allows; the seed has no Nyström row for it)", a=acc_nef[net], b=ceiling,
    what=f"d = acc(NeuralEF {net.upper()}) − acc(Nyström, same kernel)",
    ours=f"{100 * np.mean(acc_nef[net]):.2f} % vs {100 * ceiling:.2f} %; loss fell in "
         f"{sum(r['loss_last'] < r['loss_first'] for r in runs[net])}/{len(seeds)} seeds")
    for net in runs], NonInferiority(margin=0.02, reference="kernel's ceiling"),
    family="Table 1, the learner vs its kernel's ceiling", scale=100, digits=2, unit=" points")
if {"cnn", "mlp"} <= set(runs):
    claims += decide([Claim(
        "Table 1: CNN eigenfunctions (the seed's kind) beat MLP eigenfunctions on the same kernel",
        "— (ours: the seed uses CNNs)", a=acc_nef["cnn"], b=acc_nef["mlp"], what="d = acc(CNN) − acc(MLP), same steps",
        ours=f"{100 * np.mean(acc_nef['cnn']):.2f} % vs {100 * np.mean(acc_nef['mlp']):.2f} %")],
        Paired("greater"), scale=100, digits=2, unit=" points")
sec_nef = [r["sec_point"] for r in runs[first]]
print(f"test seconds per point on the CNN-GP kernel: Nyström eq. (8) {np.mean(sec_nys):.2e}, "
      f"NeuralEF {first.upper()} {np.mean(sec_nef):.2e}")
claims += decide([Claim(
    "§2.2/§3.3: NeuralEF evaluates a test point faster than Nyström's out-of-sample extension (CNN-GP kernel)",
    "Nyström 'involves costly kernel evaluation in the test phase' (seed §1; no number)", a=sec_nys, b=sec_nef,
    what=f"d = t(Nyström) − t(NeuralEF {first.upper()}), seconds per point",
    ours=f"{np.mean(sec_nef):.2e} s vs {np.mean(sec_nys):.2e} s per point, N = {n_mnist}")], Paired("greater"), digits=6)
for c in claims[n_before:]:
    print(f"- {c['claim']}\n    → {c['verdict']}")
assert all(a > 0.2 for a in table1.values()), "every projection must beat chance (10 %)"

# %% [markdown]
# ## 4. Figs. 4–5: the NTK of a small CNN binary classifier on CIFAR-10
#
# Airplane vs automobile from the CIFAR-10 test split (the training split is not needed):
# `n_cifar_test` held-out images for Fig. 4, `n_cifar_train` others to train the classifier and
# NeuralEF. NeuralEF learns the **exact** Jacobian kernel of the training images (our network
# has few parameters; the seed estimates it by eq. (20) with S = 4000). Random features use
# S = 10 Rademacher directions (the seed's cost match with k = 10 network passes). Rules:
# paired t-tests over seeds (seed = classifier, NeuralEF and directions). The eigenvalue error is
# judged over the eigenvalues above the seed's resolution limit, 1 % of μ₁ (seed §6: NeuralEF "has
# difficulties capturing the eigenpairs with relatively small eigenvalues (e.g., 1% of the largest
# eigenvalue)"); the median over all ten, our first reading, is kept beside it. Rule for both:
# one-sided t-test over seeds that the median relative error is below 0.2. What the measurement can
# reach: NeuralEF's eigenvalue estimate is an EMA of batch Rayleigh quotients (eq. {eq}`nef-mu`), and a
# batch of B rows carries the diagonal κ(x, x) with weight 1/B, which inflates small eigenvalues even
# for perfect eigenfunctions (eq. {eq}`nef-floor`); the same estimator on the exact eigenvectors, with the same batches, is
# that floor. It enters as a control: where the floor itself misses the threshold, the setting does
# not test the claim. The |cos| of the learned ψ̂_j with the exact eigenvectors says whether the
# networks found the eigenfunctions.

# %%
D = data.load("cifar10", split="test", seed=0)
both = np.isin(D.y, [0, 1])
Xc, yc = D.X[both], D.y[both]
perm = np.random.default_rng(0).permutation(len(Xc))
i_te, i_tr = perm[:n_cifar_test], perm[n_cifar_test:n_cifar_test + n_cifar_train]
ntk = [NEF.ntk_experiment(Xc[i_tr], yc[i_tr], Xc[i_te], yc[i_te], (32, 32, 3), k=10, epochs=cifar_epochs,
                          iterations=ntk_iterations, seed=s) for s in seeds]
r0 = ntk[0]
print(f"classifier: {r0['n_params']} parameters, test accuracy {[round(r['test_acc'], 3) for r in ntk]}")
print("top-10 eigenvalues (seed 0) exact   :", np.round(r0["mu_truth"], 3))
print("top-10 eigenvalues (seed 0) NeuralEF:", np.round(r0["mu_nef"], 3))
eig = [NEF.eigenvalue_error(r["mu_nef"], r["mu_truth"], resolution=NEF.RESOLUTION) for r in ntk]
floor = [NEF.eigenvalue_error(r["mu_floor"], r["mu_truth"], resolution=NEF.RESOLUTION) for r in ntk]
n_res = [e["n_resolved"] for e in eig]
cos_res = [np.round(r["cos_train"][:n], 3).tolist() for r, n in zip(ntk, n_res)]
fell = sum(r["loss_last"] < r["loss_first"] for r in ntk)
print(f"eigenvalues above the seed's resolution limit ({100 * NEF.RESOLUTION:g} % of μ₁) per seed: {n_res} of 10")
print(f"median relative eigenvalue error per seed, over those: NeuralEF {np.round([e['error'] for e in eig], 3)}, "
      f"its estimator on the exact eigenfunctions (floor) {np.round([f['error'] for f in floor], 3)}")
print(f"  over all 10: NeuralEF {np.round([e['error_all'] for e in eig], 3)}, floor {np.round([f['error_all'] for f in floor], 3)}")
print(f"|cos| of ψ̂_j with the exact eigenvectors (training images), j above the limit: {cos_res}; loss fell in {fell}/{len(ntk)}")
print(f"relative Frobenius error of the test kernel: NeuralEF {np.mean([r['err_nef'] for r in ntk]):.3f}, "
      f"random features S=10 {np.mean([r['err_rf'] for r in ntk]):.3f}, best rank-10 {np.mean([r['err_best'] for r in ntk]):.4f}")
print(f"test seconds per point: NeuralEF {r0['sec_point_nef']:.2e}, random features {r0['sec_point_rf']:.2e}, "
      f"exact Jacobian row {r0['sec_point_exact']:.2e}")
print(f"2-means accuracy: NeuralEF {np.mean([r['kmeans_nef'] for r in ntk]):.3f}, random features "
      f"{np.mean([r['kmeans_rf'] for r in ntk]):.3f}, raw pixels {np.mean([r['kmeans_raw'] for r in ntk]):.3f}")

res_txt = f"μ_j ≥ {100 * NEF.RESOLUTION:g} % of μ₁"
small = Threshold("less", threshold=0.2)
reach = "NeuralEF's eigenvalue estimator on the exact eigenfunctions (same batches and EMA) meets the threshold"
claims += decide([Claim(
    f"Fig. 5: NeuralEF approximates the NTK eigenvalues above the seed's resolution limit ({res_txt}) with small errors",
    "'small errors' (seed Fig. 5; plot only); the seed's own limit: eigenvalues below about 1 % of the largest "
    "are hard to capture (§6)", a=[e["error"] for e in eig],
    what=f"value = median over j with {res_txt} of |μ̂_j − μ_j|/μ_j",
    control=Control(reach, a=[f["error"] for f in floor], rule=small),
    ours=f"median relative error {np.mean([e['error'] for e in eig]):.3f} over the {n_res} (per seed) of the top 10 "
         f"above the limit; what the measurement reaches (the estimator on the exact eigenfunctions) "
         f"{np.mean([f['error'] for f in floor]):.3f}; |cos| of those ψ̂_j with the exact eigenvectors {cos_res}; "
         f"loss fell in {fell}/{len(ntk)} seeds; over all 10 (the previous reading) "
         f"{np.mean([e['error_all'] for e in eig]):.3f}")], small, family="Fig. 5, resolved eigenvalues")
claims += decide([Claim(
    "Fig. 5 (previous reading): NeuralEF approximates all top-10 NTK eigenvalues with small errors",
    "'small errors' (seed Fig. 5; plot only)", a=[e["error_all"] for e in eig],
    what="value = median over all 10 of |μ̂_j − μ_j|/μ_j", control=Control(reach, a=[f["error_all"] for f in floor], rule=small),
    ours=f"median relative error {np.mean([e['error_all'] for e in eig]):.3f}, the estimator on the exact eigenfunctions "
         f"{np.mean([f['error_all'] for f in floor]):.3f}; {10 - np.mean(n_res):.1f} of the 10 (mean over seeds) lie "
         f"below the seed's resolution limit ({res_txt}), where it expects no accuracy")],
    small, family="Fig. 5, all ten")
claims += decide([Claim("Fig. 4: NeuralEF recovers the test NTK matrix better than random features at matched cost (S = 10)",
                        "RF 'underperforms NeuralEF in aspect of approximation quality' (seed §4.2.2; images only)",
                        a=[r["err_rf"] for r in ntk], b=[r["err_nef"] for r in ntk],
                        what="d = relative Frobenius error of RF − that of NeuralEF")], Paired("greater"))
claims += decide([Claim("§4.2.2: 2-means on NeuralEF projections beats 2-means on random features (S = 10)",
                        "97.5 % vs 81.3 % (raw pixels 67.8 %)", a=[r["kmeans_nef"] for r in ntk],
                        b=[r["kmeans_rf"] for r in ntk], what="d = acc(NeuralEF) − acc(RF)",
                        ours=f"{100 * np.mean([r['kmeans_nef'] for r in ntk]):.1f} % vs "
                             f"{100 * np.mean([r['kmeans_rf'] for r in ntk]):.1f} % "
                             f"(raw {100 * np.mean([r['kmeans_raw'] for r in ntk]):.1f} %)")], Paired("greater"))

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.5))
vmax = np.abs(r0["K"]).max()
for ax, key, title in zip(axes[:3], ["K", "K_nef", "K_rf"], ["exact Jacobian kernel", "NeuralEF (k = 10)", "random features (S = 10)"]):
    im = ax.imshow(r0[key], vmin=-vmax, vmax=vmax, cmap="RdBu_r")
    ax.set_title(title)
    ax.set_xlabel("test image")
    ax.set_ylabel("test image")
fig.colorbar(im, ax=axes[2])
axes[3].semilogy(range(1, 11), r0["mu_truth"], "o-", label="exact (eigh of J Jᵀ/n)")
axes[3].semilogy(range(1, 11), r0["mu_nef"], "s--", label="NeuralEF μ̂")
axes[3].semilogy(range(1, 11), r0["mu_floor"], "x:", label="its estimator on exact ψ (floor)")
axes[3].axhline(NEF.RESOLUTION * r0["mu_truth"][0], color="grey", ls=":", label="1 % of μ₁ (seed §6)")
axes[3].set_xlabel("index j")
axes[3].set_ylabel("eigenvalue")
axes[3].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "10_neuralef_fig4_5")
plt.show()

# %% [markdown]
# ## 5. The bridge: NeuralEF eigenfunctions as KREPES' PC initialisation
#
# Both arms share the kernel (RBF, median bandwidth), the training rows and m. **Nyström**:
# m uniform landmarks, $\tilde A_0 = U_h\Lambda_h^{-1/2}$ (eq. {eq}`nys-pc`). **NeuralEF**: k = h
# networks (ReLU MLPs of width 64) trained on the kernel, then the KREPES model with the linear
# kernel on $\varphi = [\sqrt{\hat\mu_j}\hat\psi_j]$ (eq. {eq}`nef-bridge`), folded after training into
# $B^\top\varphi(x)+\gamma$. Each is probed (10 % labels) at init and after `bridge_epochs` of the
# KPCA loss. Test cost per point is timed on the same thread(s). Rules: non-inferiority of the
# NeuralEF init's probe (margin 1 point), and lower test cost, paired over seeds.

# %%
bridge = {}
for ds in bridge_datasets:
    if ds == "adult":
        a, b = data.load("adult", split="train", n=bridge_n_train, seed=0), data.load("adult", split="test", n=bridge_n_test, seed=0)
    else:
        a, b = data.load(ds, split="train", n=bridge_n_train, seed=0), data.load(f"{ds}_test", n=bridge_n_test, seed=0)
    kern = RBF(sigma=median_sigma(a.X))
    bridge[ds] = [NEF.bridge_run(a.X, a.y, b.X, b.y, kern, m=bridge_m, h=bridge_h, iterations=bridge_iterations,
                                 epochs=bridge_epochs, seed=s) for s in seeds]
keys = ["probe0", "probe1", "init_seconds", "train_seconds", "test_sec_point"]
print(f"{'data':<8}{'arm':<10}" + "".join(f"{key:>17}" for key in keys) + f"{'m break-even':>15}")
for ds, runs in bridge.items():
    for arm in ("nys", "nef"):
        vals = [np.mean([r[f"{key}_{arm}"] for r in runs]) for key in keys]
        be = f"{np.mean([r['m_break_even'] for r in runs]):>15.0f}" if arm == "nef" else ""
        print(f"{ds:<8}{arm:<10}" + "".join(f"{v:>17.4g}" for v in vals) + be)
for ds, runs in bridge.items():
    p_nef, p_nys = [r["probe0_nef"] for r in runs], [r["probe0_nys"] for r in runs]
    claims += decide([Claim(
        f"Bridge ({ds}): the NeuralEF initialisation is as good as the Nyström PC init (10 %-label probe)",
        "— (not in the seed)", a=p_nef, b=p_nys, what="probe accuracy at initialisation, NeuralEF vs Nyström",
        ours=f"{100 * np.mean(p_nef):.1f} % vs {100 * np.mean(p_nys):.1f} % (mean difference "
             f"{100 * np.mean(np.subtract(p_nef, p_nys)):+.1f} points)")], NonInferiority(margin=0.01, reference="Nyström"))
    t_nef, t_nys = [r["test_sec_point_nef"] for r in runs], [r["test_sec_point_nys"] for r in runs]
    claims += decide([Claim(
        f"Bridge ({ds}): the folded NeuralEF model represents a test point faster than the Nyström model (m = {bridge_m})",
        "— (seed §2.2: Nyström needs N kernel evaluations per test point)", a=t_nys, b=t_nef,
        what="d = t(Nyström) − t(NeuralEF), seconds per point",
        ours=f"{np.mean(t_nef):.2e} s vs {np.mean(t_nys):.2e} s per point; break-even m ≈ "
             f"{np.mean([r['m_break_even'] for r in runs]):.0f}")], Paired("greater"), digits=8)

# %% [markdown]
# ## Claims

# %%
for c in claims:
    print(f"- {c['claim']}\n    seed: {c['paper']}\n    ours: {c['ours']}\n    rule: {c['rule']}\n    → {c['verdict']}")
wall = time.perf_counter() - T_START
print(f"wall time {wall:.1f} s with {cpu_threads} thread(s)")
save_results(
    "10_neuralef",
    {"claims": claims, "table1": table1, "table1_nef_per_seed": acc_nef, "table1_ceiling": ceiling,
     "table1_runs": runs, "timing": timing,
     "ntk": [{key: v for key, v in r.items() if not key.startswith("K")} for r in ntk],
     "bridge": bridge, "wall_seconds": wall},
    parameters=dict(seeds=seeds, k=k, iterations=iterations, n_fig2=n_fig2, n_truth=n_truth,
                    timing_ns=timing_ns, timing_iterations=timing_iterations, n_mlpgp=n_mlpgp,
                    n_mnist=n_mnist, n_mnist_test=n_mnist_test, cnn_gp_nets=cnn_gp_nets,
                    mnist_learners=mnist_learners, mnist_iterations=mnist_iterations,
                    mnist_cnn_widths=mnist_cnn_widths, mnist_cnn_hidden=mnist_cnn_hidden,
                    mnist_width=mnist_width, n_cifar_train=n_cifar_train,
                    n_cifar_test=n_cifar_test, cifar_epochs=cifar_epochs, ntk_iterations=ntk_iterations,
                    bridge_datasets=bridge_datasets, bridge_n_train=bridge_n_train, bridge_n_test=bridge_n_test,
                    bridge_m=bridge_m, bridge_h=bridge_h, bridge_iterations=bridge_iterations,
                    bridge_epochs=bridge_epochs, cpu_threads=cpu_threads),
)
