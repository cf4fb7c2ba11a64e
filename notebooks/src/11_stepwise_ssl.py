# %% [markdown]
# # Experiment: stepwise learning in the Nyström model
#
# **Learning objectives.** After this notebook you can (1) compute the contrastive operator
# $\Gamma$ of an augmentation and read its eigen-gaps, (2) predict from eq. {eq}`sw-steptime`
# when each eigenmode is learned and check the prediction against training, and (3) say which
# losses follow the prediction and why. *Time:* 20 min in class at the default parameters;
# exercises 15 + 10 + 20 min.
#
# **What this reproduces.** {cite:t}`simon2023stepwise` solve a linearised Barlow Twins from a
# small initialisation: the
# embedding learns the top eigenmodes of an augmentation-defined *contrastive kernel* one at a
# time, in a sequence of well-separated steps, and the final representation is in closed form.
# The Nyström model in raw coordinates, $f(x) = \tilde A^\top k_x + \gamma$, is exactly such a linear
# model, so the theory applies to it without any width limit. The chapter
# *SSL learns eigenmodes one at a time* ({doc}`../stepwise`) derives the prediction for this
# model: the contrastive operator $\Gamma$ (eq. {eq}`sw-gamma`), logistic growth of each mode
# (eq. {eq}`sw-logistic`), the step times (eq. {eq}`sw-steptime`) and the final representation
# (eq. {eq}`sw-final`).
#
# We train with `krepes_lib.train.fit` (plain SGD, full batch, fresh augmentations every step)
# and record the eigenvalues of the views' cross-covariance $C(t) = \tilde A(t)^\top\Gamma\tilde A(t)$
# after every few steps, then do the same with the library's SimCLR and VICReg losses.
#
# **Our choices (the paper's setting is a ResNet on CIFAR; ours is a kernel model on digits).**
# The covariance form of Barlow Twins (no per-dimension standardisation, off-diagonal weight 1,
# as in Simon et al.'s analysis; the library's Barlow Twins standardises every dimension and
# therefore has no small-initialisation regime); the table augmenter; RBF kernel with the median
# bandwidth; k-means++ landmarks; learning rate set from the top eigenvalue of $\Gamma$.
#
# **Rules fixed before the run** (per seed, then a one-sided one-sample t-test of the per-seed
# values against the threshold, α = `alpha`):
# 1. *step times*: $\max_k |\log(\hat t_k / t_k)| < \log$ `step_ratio_tol` (measured vs predicted);
# 2. *order*: just after the k-th step, the top-k learned directions span the predicted top-k
#    eigenfunctions: largest principal angle $<$ `order_threshold_deg` for every resolvable k
#    (a k whose eigen-gap $\lambda_k/\lambda_{k+1} \ge$ `gap_min`);
# 3. *final representation*: largest principal angle to $K\,U_h\Lambda_h^{-1/2}$ $<$ `final_threshold_deg`.
#
# Rules 2–3 are applied with the same thresholds to SimCLR and VICReg, against Barlow Twins'
# prediction.

# %% tags=["parameters"]
dataset = "digits"
n = 300  # training points (full batch)
m = 48  # landmarks
h = 5  # representation dimensions (the modes tracked)
sigma_scale = 1.0  # RBF bandwidth in units of the median heuristic
init_scale = 1e-3  # factor on the random init (which has E[Ã₀ᵀK_mmÃ₀] equal to I)
lr_scale = 0.5  # SGD step η in units of 1 / (8 λ₁)
epochs_factor = 2.5  # train for epochs_factor × the predicted last step time
n_draws = 10  # augmented view pairs averaged in Γ
record_every = 2  # steps between spectrum records
seeds = [0, 1, 2]
other_losses = {"vicreg": {"optimizer": "sgd", "lr": 0.05, "epochs": 300},
                "simclr": {"optimizer": "adam", "lr": 1e-3, "epochs": 120}}
step_ratio_tol = 1.25
order_threshold_deg = 20.0
final_threshold_deg = 10.0
gap_min = 1.15
alpha = 0.05
cpu_threads = 1

# %%
import matplotlib.pyplot as plt
import numpy as np

import krepes_lib as kr
from krepes_lib import data
from krepes_lib.studies import stepwise as sw
from krepes_lib.augment import TableAugmenter
from krepes_lib.backend import limit_host_threads
from krepes_lib.kernels import RBF, median_sigma
from krepes_lib.landmarks import select_landmarks
from krepes_lib.model import NystromModel
from krepes_lib.nystrom import Nystrom
from krepes_lib.studies.results import save_figure, save_results

limit_host_threads(cpu_threads)

# %% [markdown]
# ## The contrastive operator and its prediction
#
# $\Gamma$ is estimated from `n_draws` pairs of augmented views of the whole training set;
# a second, independent estimate $\Gamma_{\rm eval}$ (other views) is used to measure $C(t)$.

# %%
X = data.load(dataset, n=n, seed=0).X.astype(np.float64)
kernel = RBF(sigma=sigma_scale * median_sigma(X))
nys = Nystrom(kernel, select_landmarks(X, m=m, method="kmeans++", kernel=kernel, seed=0), dtype=np.float64)
augment = TableAugmenter()
Gamma = sw.contrastive_operator(nys, X, augment, n_draws=n_draws, seed=1001)
Gamma_eval = sw.contrastive_operator(nys, X, augment, n_draws=n_draws, seed=2002)
lam_all = np.linalg.eigvalsh(Gamma)[::-1]
lr = lr_scale / (8 * lam_all[0])
gaps = lam_all[:h] / lam_all[1:h + 1]
resolvable = [k + 1 for k in range(h) if gaps[k] >= gap_min]
print("top eigenvalues of Γ:", np.round(lam_all[:h + 1], 5))
print("gaps λ_k/λ_{k+1}:", np.round(gaps, 2), "→ resolvable k:", resolvable, f"; lr = {lr:.3g}")

# %% [markdown]
# ## Barlow Twins (covariance form) from a small initialisation

# %%
bt = sw.CovarianceBarlowTwins()
runs = {}
for s in seeds:
    model = sw.scale_init(NystromModel(nys, h=h, coords="raw", init="random", seed=s), init_scale)
    pred = sw.predict(Gamma, h, lr, A0=model.A_tilde)
    epochs = int(np.ceil(epochs_factor * pred.step_times[-1]))
    trace = sw.track_spectrum(model, X, bt, epochs=epochs, lr=lr, Gamma_eval=Gamma_eval,
                              optimizer="sgd", augment=augment, seed=s, record_every=record_every)
    t_hat = sw.step_times(trace.t, trace.eig, final=1.0)
    mids = [np.sqrt(t_hat[k - 1] * t_hat[k]) if k < h else trace.t[-1] for k in resolvable]
    order = np.degrees(sw.learned_subspace_angles(nys, X, trace, pred, Gamma_eval, resolvable, mids))
    final = np.degrees(sw.final_angle(nys, X, trace.A[-1], pred))
    overlaps = sw.mode_overlaps(trace.A[-1], Gamma, h + 2)
    runs[s] = dict(pred=pred, trace=trace, t_hat=t_hat, order=order, final=final, overlaps=overlaps)
    print(f"seed {s}: predicted steps {np.round(pred.step_times, 1)}\n        measured  {np.round(t_hat, 1)}"
          f"\n        order angles (deg) {np.round(order, 2)}; final angle {final:.2f}°; "
          f"final eigenvalues of C {np.round(trace.eig[-1], 3)}\n        modes 1..h+2 in the learned span "
          f"(‖Qᵀu_j‖): {np.round(overlaps, 2)}")

# %%
s0 = seeds[0]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
runs[s0]["trace"].plot(axes[0], runs[s0]["pred"], f"Barlow Twins (covariance), seed {s0}: "
                       "training (colour) vs closed form (dashed)")
for s in seeds:
    axes[1].loglog(runs[s]["pred"].step_times, runs[s]["t_hat"], "o", label=f"seed {s}")
lim = [min(r["pred"].step_times.min() for r in runs.values()) * 0.8,
       max(r["pred"].step_times.max() for r in runs.values()) * 1.2]
axes[1].plot(lim, lim, "k:", lw=1)
axes[1].set_xlabel("predicted step time $t_k$ (eq. sw-steptime)")
axes[1].set_ylabel(r"measured $\hat t_k$")
axes[1].legend()
fig.tight_layout()
save_figure(fig, "11_stepwise_bt")
plt.show()

# %% [markdown]
# ## SimCLR and VICReg from the same small initialisation
#
# These losses have no closed form here; we plot the eigenvalues of $C(t)$ on a log scale
# (SimCLR normalises the embeddings, so their scale is not set by the loss; a step is the
# time an eigenvalue reaches half of its final value) and measure the order of the steps and
# the final subspace against **Barlow Twins'** prediction.

# %%
other = {}
for name, cfg in other_losses.items():
    other[name] = {}
    for s in seeds:
        model = sw.scale_init(NystromModel(nys, h=h, coords="raw", init="random", seed=s), init_scale)
        pred = runs[s]["pred"]
        trace = sw.track_spectrum(model, X, name, epochs=cfg["epochs"], lr=cfg["lr"], Gamma_eval=Gamma_eval,
                                  optimizer=cfg["optimizer"], augment=augment, seed=s,
                                  record_every=record_every)
        t_hat = sw.step_times(trace.t, trace.eig)  # half of each eigenvalue's final value
        mids = [np.sqrt(max(t_hat[k - 1], 1) * max(t_hat[k], 1)) if k < h else trace.t[-1] for k in resolvable]
        order = np.degrees(sw.learned_subspace_angles(nys, X, trace, pred, Gamma_eval, resolvable, mids))
        final = np.degrees(sw.final_angle(nys, X, trace.A[-1], pred))
        other[name][s] = dict(trace=trace, t_hat=t_hat, order=order, final=final)
        print(f"{name} seed {s}: step times {np.round(t_hat, 1)}; order angles {np.round(order, 1)}; "
              f"final angle {final:.1f}°; loss {trace.loss[0]:.4g} → {trace.loss[-1]:.4g}")

fig, axes = plt.subplots(1, len(other), figsize=(5.5 * len(other), 3.8), squeeze=False)
for ax, (name, rs) in zip(axes[0], other.items()):
    rs[s0]["trace"].plot(ax, title=f"{name}, seed {s0}", log=True)
fig.tight_layout()
save_figure(fig, "11_stepwise_others")
plt.show()

# %% [markdown]
# ## Claims

# %%
log_tol = np.log(step_ratio_tol)
below = kr.claims.Paired("less", alpha=alpha)  # one-sided t-test over seeds of value − threshold < 0; one claim per family
items = [sw.threshold_claim("Barlow Twins (covariance): measured step times match the closed form, max_k |log(t̂_k/t_k)|",
    [float(np.max(np.abs(np.log(r["t_hat"] / r["pred"].step_times)))) for r in runs.values()],
    log_tol, "", "Simon et al. 2023: in the linearised model mode k is learned at t_k ∝ ln(1/c_k(0))/λ_k"),
    sw.threshold_claim("Barlow Twins (covariance): modes learned in the order of Γ's eigenvalues (max order angle, resolvable k)",
    [float(r["order"].max()) for r in runs.values()], order_threshold_deg, "°",
    "top eigenmodes of the contrastive kernel learned one at a time, in order"),
    sw.threshold_claim("Barlow Twins (covariance): final representation = top-h eigenfunctions of Γ (largest principal angle)",
    [float(r["final"]) for r in runs.values()], final_threshold_deg, "°",
    "closed-form final representation (top-h contrastive eigenfunctions, whitened)")]
for name, rs in other.items():
    items.append(sw.threshold_claim(f"{name}: modes learned in Barlow Twins' predicted order (max order angle, resolvable k)",
        [float(r["order"].max()) for r in rs.values()], order_threshold_deg, "°",
        "same stepwise phenomenon with SimCLR and VICReg (observed in ResNets)"))
    items.append(sw.threshold_claim(f"{name}: final representation spans Barlow Twins' predicted top-h eigenfunctions",
        [float(r["final"]) for r in rs.values()], final_threshold_deg, "°",
        "(not claimed by the paper; a check of how close the losses' solutions are)"))
claims = [row for it in items for row in kr.claims.decide([it], below)]
for c in claims:
    print(f"- {c['claim']}:\n    {c['ours']}\n    → {c['verdict']}")

# %%
save_results(
    "11_stepwise_ssl",
    {
        "claims": claims,
        "gamma_eigenvalues": lam_all[:h + 1], "lr": lr, "resolvable": resolvable,
        "bt": {s: {"predicted": r["pred"].step_times, "measured": r["t_hat"], "order_deg": r["order"],
                   "final_deg": r["final"], "c0": r["pred"].c0} for s, r in runs.items()},
        "others": {name: {s: {"measured": r["t_hat"], "order_deg": r["order"], "final_deg": r["final"]}
                          for s, r in rs.items()} for name, rs in other.items()},
    },
    parameters=dict(dataset=dataset, n=n, m=m, h=h, sigma_scale=sigma_scale, init_scale=init_scale,
                    lr_scale=lr_scale, epochs_factor=epochs_factor, n_draws=n_draws,
                    record_every=record_every, seeds=seeds, other_losses=other_losses,
                    step_ratio_tol=step_ratio_tol, order_threshold_deg=order_threshold_deg,
                    final_threshold_deg=final_threshold_deg, gap_min=gap_min, alpha=alpha),
)

# %% [markdown]
# ## Summary
#
# * For the covariance form of Barlow Twins the Nyström model *is* the linear model of the
#   theory, and the printed step times, order angles and final angles above compare training
#   by `fit` (with fresh augmentations every step) against the closed form; the verdicts are in
#   the claim rows.
# * A near-degenerate pair of eigenvalues of $\Gamma$ (gap below `gap_min`) is learned as one
#   two-dimensional step; the order rule only asks for the resolvable subspaces.
# * From a *random* small initialisation the race is decided by $\ln(1/c_j(0))/\rho_j$, not by $\lambda_j$
#   alone: a mode beyond $h$ whose output direction overlaps the initialisation more can take part
#   of the last output slot before mode $h$ does, and the model then stays near that saddle for a
#   long time. The printed overlaps $\lVert Q^\top u_j\rVert$ for $j = h+1, h+2$ show when this happened.
# * SimCLR and VICReg are judged against Barlow Twins' prediction with the same thresholds;
#   their rows say whether the same eigenfunctions, in the same order, are learned.
#
# ## Exercises
#
# `tests/test_exercises.py` recomputes the numbers quoted in the solutions.

# %% [raw]
# # BEGIN QUESTION
# name: ex1
# points: 1

# %% [markdown]
# *(15 min) Predict, then run.* Halve `init_scale` (`5e-4`). By how many SGD steps should
# every step time move (hint: eq. {eq}`sw-steptime`, $c_k(0) \propto$ `init_scale`²)? Compute
# the predicted shift of each of the $h$ step times as an array `shift` (use `lam_all`, `lr`
# and `h` from above), then re-run with `init_scale = 5e-4` and compare with the printed
# step times.

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# $c_k(0)$ scales with `init_scale`², so $\ln((1-c_k)/c_k)$ grows by $2\ln 2$ and every step
# time grows by $2\ln 2/\rho_k$ steps, $\rho_k = 2\ln(1+4\eta\lambda_k)$: the later (small-$\lambda$)
# modes move most. With `lr_scale = 0.5`, $4\eta\lambda_1 = 1/4$ and $\rho_1 = 2\ln 1.25 = 0.446$,
# so the first step moves by 3.1 steps and mode $k$ by $3.1\,\rho_1/\rho_k$.

# %%
shift = 2 * np.log(2) / (2 * np.log1p(4 * lr * lam_all[:h]))  # SOLUTION
print("predicted shift of each step time (steps):", np.round(shift, 2))

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert np.shape(shift) == (h,), "one shift per mode"
assert abs(shift[0] - np.log(2) / np.log(1.25)) < 0.01, "the first mode's shift is 2 ln 2 / ρ₁"

# %%
""" # BEGIN TEST CONFIG
hidden: true
""" # END TEST CONFIG
assert np.allclose(shift, np.log(2) / np.log1p(4 * lr * lam_all[:h]), rtol=1e-6)

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: ex2
# points: 1

# %% [markdown]
# *(10 min) Predict, then run.* Set `lr_scale = 0.1`. By what factor `stretch` should the first
# step time grow, and do the steps become sharper or blurrier as a function of $t/t_k$?
# (Hint: the logistic curve of eq. {eq}`sw-logistic` in units of its own step time.)

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# All times scale with $1/\rho$: $\rho_1 = 2\ln(1 + 4\eta\lambda_1)$ goes from $2\ln 1.25$ to
# $2\ln 1.05$, a factor 4.57 (not 5: the discrete rate is not proportional to η). In units of
# $t/t_k$ the curve is $c_0^{1 - t/t_k}$-like: its width relative to $t_k$ is $1/\ln(1/c_0)$,
# independent of η, so the *shape* does not change; only the discretisation error of the
# prediction (the ratio $\rho/8\eta\lambda$) shrinks.

# %%
stretch = np.log1p(4 * lr * lam_all[0]) / np.log1p(4 * (lr / 5) * lam_all[0])  # SOLUTION
print(f"first step time grows by a factor {stretch:.2f}")

# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
assert 4.5 < stretch < 4.65, "ρ₁(0.5)/ρ₁(0.1) = ln 1.25 / ln 1.05"

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: ex3
# manual: true

# %% [markdown]
# *(20 min) Predict, then run.* Set `sigma_scale = 0.5`. The gaps of Γ change (printed in the
# first cell); which steps merge and which separate? Does the order rule still hold?

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# At the default bandwidth the gaps are 1.43, **1.03**, 1.71, 1.39, 2.07: modes 2 and 3 are
# nearly degenerate ($\lambda_2/\lambda_3 = 1.03 <$ `gap_min`), are learned as one two-dimensional
# step (seed 0: measured 58.6 and 61.1 steps) and $k = 2$ is not resolvable (resolvable
# $k$ = 1, 3, 4, 5). With `sigma_scale = 0.5` the narrower kernel *separates* that pair: the gaps
# become 1.32, 1.36, 1.55, 1.24, 1.73, every $k = 1,\dots,5$ is resolvable, and the five steps are
# distinct (seed 0: 43.1, 54.5, 73.3, 118.4, 180.3 steps, predicted 43.1, 55.6, 73.8, 115.1,
# 186.9). The order rule still holds (max order angles 5.5°, 14.7°, 4.2° over the seeds,
# p = 0.035); the largest angle is now at $k = 4$, the smallest gap (1.24).
# (Run: `papermill -p sigma_scale 0.5 11_stepwise_ssl.ipynb out.ipynb`.)

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION
