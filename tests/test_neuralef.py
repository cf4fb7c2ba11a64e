"""NeuralEF (krepes_lib.studies.neuralef): gradient eq. (nef-grad) vs autograd, L2BN eq.
(nef-l2bn), convergence on a kernel with known eigenfunctions, Erf NNGP eq. (nef-erf) vs Monte
Carlo, eNTK random features eq. (nef-rf) vs an explicit Jacobian, Nyström eq. (nef-nys-oos),
and the bridge eq. (nef-bridge)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from krepes_lib.kernels import RBF  # noqa: E402
from krepes_lib.studies.neuralef import (  # noqa: E402
    RESOLUTION, CollapsedModel, ErfNNGP, L2BatchNorm, NeuralEF, ParallelCNN, ParallelMLP, RandomFeatureKernel,
    SmallCNN, abs_cosine, batches, eigenvalue_error, eigenvalue_estimate, entk_features, exact_entk_features,
    neuralef_grad,
    neuralef_objective, neuralef_pc_model, nystrom_eigenfunctions, projection_run, subspace_overlap,
)


def test_hand_gradient_matches_autograd_float64():
    """eq. (nef-grad): G from neuralef_grad and one VJP equal autograd of eq. (nef-loss)."""
    torch.manual_seed(0)
    B, k = 7, 4
    net = ParallelMLP(3, k, width=5, activation="tanh", seed=1, dtype="float64")
    norm = L2BatchNorm(k)
    X = torch.randn(B, 3, dtype=torch.float64)
    A = torch.randn(B, B, dtype=torch.float64)
    K = A @ A.T + 0.1 * torch.eye(B, dtype=torch.float64)
    # reference: autograd of the objective, with respect to Psi and to every weight
    Psi = norm(net(X))
    Psi.retain_grad()
    neuralef_objective(Psi, K).backward()
    ref_psi = Psi.grad.clone()
    ref = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    # hand-derived gradient + one vector-Jacobian product
    Psi2 = norm(net(X))
    G, R = neuralef_grad(Psi2.detach(), K)
    Psi2.backward(G)
    assert torch.allclose(G, ref_psi, rtol=1e-10, atol=1e-12)
    for p, r in zip(net.parameters(), ref):
        assert torch.allclose(p.grad, r, rtol=1e-9, atol=1e-12)
    assert torch.allclose(R, Psi2.detach().T @ K @ Psi2.detach() / B**2)
    # the gradient is not trivially zero and the coupling matters (j > 0 differs from 2Kψ_j)
    assert not torch.allclose(G[:, 1], -(2.0 / B**2) * K @ Psi2.detach()[:, 1])


def test_l2bn_train_and_eval():
    """eq. (nef-l2bn): unit mean square per output in training; the EMA of σ in evaluation."""
    norm = L2BatchNorm(2, ema=0.5)
    H1 = torch.tensor([[1.0, 2.0], [3.0, -4.0]], dtype=torch.float64)
    H2 = 2 * H1
    out = norm(H1)
    assert torch.allclose((out**2).mean(0), torch.ones(2, dtype=torch.float64))
    norm(H2)
    s1 = torch.sqrt((H1**2).mean(0))
    expect = 0.5 * s1 + 0.5 * 2 * s1
    assert torch.allclose(norm.running_sigma.double(), expect, rtol=1e-6)
    norm.eval()
    assert torch.allclose(norm(H1), H1 / expect, rtol=1e-6)


def _legendre_features(lams):
    """φ_j(x) = √λ_j √(2j+1) P_j(x): eigenfunctions √(2j+1)P_j are orthonormal under U[-1, 1]."""
    from numpy.polynomial import legendre

    def psi(X):
        x = np.asarray(X, dtype=np.float64)[:, 0]
        return np.stack([math.sqrt(2 * j + 1) * legendre.legval(x, [0] * j + [1]) for j in range(len(lams))], 1)

    def fn(X):
        return psi(X) * np.sqrt(lams)[None, :]
    return RandomFeatureKernel(feature_fn=fn, n_samples=1), psi


def test_converges_on_finite_rank_kernel():
    """Learned eigenfunctions and eigenvalues converge to the known ones (fixed tolerances)."""
    torch.set_num_threads(1)
    lams = np.array([1.0, 0.5, 0.25])
    kern, psi = _legendre_features(lams)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (2048, 1))
    nef = NeuralEF(ParallelMLP(1, 3, width=32, seed=0), k=3, lr=3e-3).fit(
        X, kern, iterations=1500, batch_size=256, seed=0, progress=False)
    G = np.linspace(-1, 1, 401)[:, None]
    P, T = nef.predict(G), psi(G)
    cos = np.abs((P * T).sum(0)) / np.linalg.norm(P, axis=0) / np.linalg.norm(T, axis=0)
    assert np.all(cos > 0.98), cos
    assert np.all(np.abs(nef.eigenvalues - lams) / lams < 0.1), nef.eigenvalues
    # held-out normalisation with the EMA of σ: mean square ≈ 1 under q
    Xh = rng.uniform(-1, 1, (4000, 1))
    assert np.allclose((nef.predict(Xh) ** 2).mean(0), 1.0, atol=0.1)


def test_deterministic_on_cpu():
    X = np.random.default_rng(1).uniform(-2, 2, (128, 1))
    a = NeuralEF(ParallelMLP(1, 2, seed=3), 2).fit(X, RBF(sigma=1.0), iterations=30, seed=5, progress=False)
    b = NeuralEF(ParallelMLP(1, 2, seed=3), 2).fit(X, RBF(sigma=1.0), iterations=30, seed=5, progress=False)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert a.predict(X).dtype == np.float32


def test_erf_nngp_matches_monte_carlo():
    """eq. (nef-erf) against a wide random erf network (naive Monte Carlo, 4σ band)."""
    from scipy.special import erf

    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    kern = ErfNNGP(depth=2, sigma_w2=2.0, sigma_b2=1.0)
    K = kern(X, dtype="float64")
    N, S = 256, 1500  # hidden width, number of networks
    outs = []
    for _ in range(S):
        W1 = rng.normal(size=(3, N)) * math.sqrt(2.0 / 3)
        a1 = erf(X @ W1 + rng.normal(size=N))
        W2 = rng.normal(size=(N, N)) * math.sqrt(2.0 / N)
        a2 = erf(a1 @ W2 + rng.normal(size=N))
        w3 = rng.normal(size=N) * math.sqrt(2.0 / N)
        outs.append(a2 @ w3 + rng.normal())
    G = np.array(outs)  # (S, 4)
    K_mc = G.T @ G / S
    se = np.sqrt((G[:, :, None] ** 2 * G[:, None, :] ** 2).mean(0) / S)
    assert np.all(np.abs(K_mc - K) < 4 * se + 0.02), (K, K_mc)
    assert np.allclose(kern.diag(X, dtype="float64"), np.diag(K))


def test_entk_features_match_explicit_jacobian():
    """The eNTK features NeuralEF uses are the library's (TorchNTK): exact = the explicit Jacobian,
    sketch = J(x)v_s/√S by forward mode (eq. nef-rf)."""
    net = SmallCNN((8, 8, 1), width=2, seed=0).double()
    X = np.random.default_rng(0).normal(size=(5, 64))
    J = exact_entk_features(net, X)
    Xt = torch.as_tensor(X)
    Jref = []
    for i in range(5):
        net.zero_grad()
        net(Xt[i:i + 1])[0].backward()
        Jref.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy())
    assert np.allclose(J, np.array(Jref), atol=1e-10)
    # the sketched eNTK of krepes_lib.neural.TorchNTK: direction s is Rademacher from default_rng([seed, s])
    # over the parameters in order, and φ carries the 1/√S
    rf = entk_features(net, n_samples=3, seed=1)
    Fx = rf.features(X)
    P = J.shape[1]
    V = [2.0 * np.random.default_rng([1, s]).integers(0, 2, size=P, dtype=np.int8) - 1 for s in range(3)]
    assert rf.n_samples == 1 and np.allclose(Fx, J @ np.stack(V, 1) / np.sqrt(3), atol=1e-10)
    # unbiasedness E[vvᵀ] = I: many directions approach J Jᵀ
    rf_many = entk_features(net, n_samples=3000, seed=2)
    K_rf, K = rf_many(X, dtype="float64"), J @ J.T
    assert np.linalg.norm(K_rf - K) / np.linalg.norm(K) < 0.1


def test_nystrom_out_of_sample_is_consistent():
    """eq. (nef-nys-oos): ψ̂_j(x_n) = √N u_nj on the training points; μ̂ = λ/N."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    kern = RBF(sigma=1.0)
    mu, psi, _ = nystrom_eigenfunctions(kern, X, 4)
    lam, U = np.linalg.eigh(kern(X, dtype="float64"))
    assert np.allclose(mu, lam[::-1][:4] / 60)
    P = psi(X.copy())  # a copy: the out-of-sample formula, not the stored training values
    assert np.allclose(np.abs(P), np.abs(U[:, ::-1][:, :4]) * math.sqrt(60), atol=1e-8)
    assert np.allclose(psi(X), P, atol=1e-8)  # the stored √N U agrees with eq. (8) (same signs)
    assert np.allclose((P**2).mean(0), 1.0)
    mu2, psi2, _ = nystrom_eigenfunctions(kern, X, 4, solver="lanczos")
    assert np.allclose(mu2, mu, rtol=1e-8)
    assert np.allclose(np.abs(psi2(X.copy())), np.abs(P), atol=1e-6)


def test_bridge_collapsed_model_equals_model():
    """eq. (nef-bridge): Bᵀφ(x) + γ equals the Nyström model on the linear kernel of φ."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, (300, 2))
    nef = NeuralEF(ParallelMLP(2, 4, seed=0), 4).fit(X, RBF(sigma=1.0), iterations=50, progress=False)
    model, Z = neuralef_pc_model(nef, X, m=40, h=3, seed=0, dtype="float64")
    model.params["gamma"][:] = rng.normal(size=3)
    model.params["W"][:] += 0.1 * rng.normal(size=model.params["W"].shape)
    Xt = rng.uniform(-2, 2, (50, 2))
    col = CollapsedModel(model, nef)
    assert col.B.shape == (4, 3)
    assert np.allclose(col.embed(Xt), model.embed(nef.features(Xt).astype(np.float64)), atol=1e-4)
    with pytest.raises(ValueError, match="k >= h"):
        neuralef_pc_model(nef, X, m=40, h=5)


def test_parallel_networks_are_independent():
    """Output j depends only on network j's weights (k networks, seed §3.2), batch norm included
    (per channel: it couples the samples of a batch, never two networks)."""
    nets = ((ParallelMLP(3, 3, seed=0), 3), (ParallelCNN((16, 16), 3, widths=(2, 2), hidden=4), 256),
            (ParallelCNN((16, 16), 3, widths=(2, 2), hidden=4, batch_norm=True), 256))
    for net, d in nets:
        X = torch.randn(4, d)
        net(X)[:, 1].sum().backward()
        checked = 0
        for name, p in net.named_parameters():
            if p.grad is None:
                continue
            g = p.grad
            if g.shape[0] == 3 or (name.startswith(("conv", "bn")) and g.shape[0] % 3 == 0):
                blocks = g.reshape(3, -1)
                assert torch.all(blocks[0] == 0) and torch.all(blocks[2] == 0), name
                assert torch.any(blocks[1] != 0), name
                checked += 1
        assert checked == sum(1 for _ in net.parameters()), "every parameter is one block per network"


def test_parallel_cnn_shared_first_convolution_equals_k_separate_networks():
    """The first convolution sees the same image for all k networks: one convolution with k·c1
    channels equals k separate CNNs (grouped convolution of the image repeated k times)."""
    net = ParallelCNN((16, 16, 2), 3, widths=(2, 3), hidden=4, seed=1, dtype="float64")
    X = torch.randn(5, 16 * 16 * 2, dtype=torch.float64)
    out = net(X)
    img = X.reshape(5, 16, 16, 2).permute(0, 3, 1, 2)
    ref = []
    for j in range(3):
        z = torch.conv2d(img, net.conv1.weight[2 * j:2 * j + 2], net.conv1.bias[2 * j:2 * j + 2])
        z = torch.max_pool2d(torch.relu(z), 2)
        z = torch.conv2d(z, net.conv2.weight[3 * j:3 * j + 3], net.conv2.bias[3 * j:3 * j + 3])
        z = torch.max_pool2d(torch.relu(z), 2).flatten(1)  # relu-then-pool: the textbook order
        z = torch.relu(z @ net.fc1[j] + net.b1[j])
        ref.append((z @ net.fc2[j] + net.b2[j])[:, 0])
    assert torch.allclose(out, torch.stack(ref, 1), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="widths"):
        ParallelCNN((16, 16), 3, widths=(2,))


def test_projection_run_reports_its_training():
    """One NeuralEF row of Table 1: accuracy, iterations, wall and CPU seconds, loss records."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (96, 256)).astype(np.float32)
    y = (X[:, :128].mean(1) > X[:, 128:].mean(1)).astype(int)
    kern = RBF(sigma=4.0)
    for net in ("cnn", "mlp"):
        r = projection_run(X[:64], y[:64], X[64:], y[64:], kern, net=net, k=3, iterations=6,
                           image_shape=(16, 16), widths=(2, 2), hidden=4, width=8, batch_size=32)
        assert r["iterations"] == 6 and 0 <= r["acc"] <= 1 and r["mu"].shape == (3,)
        assert r["cpu_seconds"] >= 0 and r["seconds"] > 0 and np.isfinite([r["loss_first"], r["loss_last"]]).all()
    with pytest.raises(ValueError, match="image_shape"):
        projection_run(X[:64], y[:64], X[64:], y[64:], kern, net="cnn", iterations=1)
    with pytest.raises(ValueError, match="net="):
        projection_run(X[:64], y[:64], X[64:], y[64:], kern, net="resnet", iterations=1)


def test_eigenvalue_error_over_the_resolved_eigenvalues():
    """Median relative error over μ_j ≥ 1 % of μ₁ (seed §6) and over all, on known numbers."""
    mu = np.array([1.0, 0.1, 0.02, 0.005, 0.001])
    mu_hat = mu * np.array([1.1, 0.8, 1.0, 20.0, 50.0])  # relative errors 0.1, 0.2, 0, 19, 49
    e = eigenvalue_error(mu_hat, mu)
    assert RESOLUTION == 0.01 and e["n_resolved"] == 3
    assert e["error"] == pytest.approx(0.1) and e["error_all"] == pytest.approx(0.2)
    assert np.allclose(e["rel"], [0.1, 0.2, 0.0, 19.0, 49.0])
    assert eigenvalue_error(mu_hat, mu, resolution=0.0)["n_resolved"] == 5
    with pytest.raises(ValueError, match="decreasing"):
        eigenvalue_error(mu_hat, mu[::-1])
    with pytest.raises(ValueError, match="same"):
        eigenvalue_error(mu_hat[:3], mu)


def test_random_feature_cache_keeps_the_training_features():
    """Training features are computed once even when test blocks come between (most recently
    used kept up to cache_bytes), and Nyström and NeuralEF share them."""
    calls = []

    def fn(Xb):
        calls.append(len(Xb))
        return np.asarray(Xb, dtype=np.float64) ** 2

    kern = RandomFeatureKernel(feature_fn=fn, n_samples=1)
    rng = np.random.default_rng(0)
    Xtr, Xte = rng.normal(size=(40, 2)).astype(np.float32), rng.normal(size=(10, 2)).astype(np.float32)
    nystrom_eigenfunctions(kern, Xtr, 2)[1](Xte)
    NeuralEF(ParallelMLP(2, 2, seed=0), 2).fit(Xtr, kern, iterations=2, batch_size=8, progress=False)
    assert calls == [40, 10]
    small = RandomFeatureKernel(feature_fn=fn, n_samples=1, cache_bytes=Xtr.nbytes * 2)  # one float64 block
    small.features(Xtr), small.features(Xte), small.features(Xtr)
    assert calls[2:] == [40, 10, 40]
    none = RandomFeatureKernel(feature_fn=fn, n_samples=1, cache_bytes=0)
    none.features(Xte), none.features(Xte)
    assert calls[5:] == [10, 10]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="k="):
        NeuralEF(ParallelMLP(1, 2), k=0)
    with pytest.raises(TypeError, match="Kernel"):
        NeuralEF(ParallelMLP(1, 2), 2).fit(np.zeros((4, 1)), "rbf")
    with pytest.raises(ValueError, match="k=3"):
        NeuralEF(ParallelMLP(1, 2), 3).fit(np.random.rand(8, 1), RBF(), iterations=1, progress=False)
    with pytest.raises(ValueError, match="depth"):
        ErfNNGP(depth=0)


def test_fit_uses_torch_ntk_features_when_available():
    """A TorchNTK target (krepes_lib.neural.ntk): features once, blocks F_b F_bᵀ = K(X_b, X_b)."""
    ntk = pytest.importorskip("krepes_lib.neural.ntk")
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    kern = ntk.TorchNTK(net, implementation="exact")
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    F = np.asarray(kern.features(X), dtype=np.float64)
    assert np.allclose(F @ F.T, np.asarray(kern(X), dtype=np.float64), rtol=1e-4, atol=1e-5)
    a = NeuralEF(ParallelMLP(3, 2, seed=0), 2).fit(X, kern, iterations=20, batch_size=16, progress=False)
    b = NeuralEF(ParallelMLP(3, 2, seed=0), 2).fit(X, kern, iterations=20, batch_size=16, progress=False,
                                                    precompute_features=False)
    assert np.allclose(a.predict(X), b.predict(X), atol=1e-4)


def test_agreement_measures():
    """|cos| per column, and the span overlap that ignores rotations inside the span."""
    rng = np.random.default_rng(0)
    T = np.linalg.qr(rng.normal(size=(50, 4)))[0]
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    P = T[:, :3] @ R  # same span, rotated basis
    assert abs(subspace_overlap(P, T[:, :3]) - 1.0) < 1e-12
    assert subspace_overlap(T[:, 3:4], T[:, :1]) < 1e-20
    assert np.allclose(abs_cosine(-T, T), 1.0)
    assert abs_cosine(P, T[:, :3]).min() < 0.99  # single columns do see the rotation


def test_erf_nngp_one_layer_matches_quadrature():
    """eq. (nef-erf), one step: σ_w² E[erf(u)erf(v)] + σ_b² by 2-D Gauss–Hermite quadrature
    (an independent closed-form check, tight tolerance), for depth 1 and, chained, depth 2."""
    from numpy.polynomial.hermite_e import hermegauss
    from scipy.special import erf

    z, w = hermegauss(80)
    w = w / w.sum()

    def expect(S):  # E[erf(u) erf(v)], (u, v) ~ N(0, S), by quadrature over a Cholesky factor
        L = np.linalg.cholesky(S + 1e-15 * np.eye(2))
        Z1, Z2 = np.meshgrid(z, z, indexing="ij")
        u = L[0, 0] * Z1
        v = L[1, 0] * Z1 + L[1, 1] * Z2
        return float((np.outer(w, w) * erf(u) * erf(v)).sum())

    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, 2))
    sw2, sb2 = 2.0, 1.0
    S1 = sw2 * X @ X.T / 2 + sb2
    K1 = np.array([[sw2 * expect(S1[np.ix_([i, j], [i, j])]) + sb2 for j in range(3)] for i in range(3)])
    assert np.allclose(ErfNNGP(depth=1, sigma_w2=sw2, sigma_b2=sb2)(X, dtype="float64"), K1, atol=1e-7)
    K2 = np.array([[sw2 * expect(K1[np.ix_([i, j], [i, j])]) + sb2 for j in range(3)] for i in range(3)])
    assert np.allclose(ErfNNGP(depth=2, sigma_w2=sw2, sigma_b2=sb2)(X, dtype="float64"), K2, atol=1e-7)


def test_eigenvalue_estimate_full_batch_is_the_exact_eigenvalue():
    """eq. (nef-mu) on the exact eigenvectors with B = n: R̃_jj = u_jᵀKu_j/n = λ_j/n = μ_j."""
    rng = np.random.default_rng(0)
    F = rng.normal(size=(30, 6))
    K = F @ F.T / 2.0 + 0.3
    lam, U = np.linalg.eigh(K)
    lam, U = lam[::-1][:4], U[:, ::-1][:, :4]
    mu = eigenvalue_estimate(U * math.sqrt(30), F, iterations=3, batch_size=64, div=2.0, const=0.3)
    assert np.allclose(mu, lam / 30, rtol=1e-12)


def test_eigenvalue_estimate_matches_explicit_batch_blocks():
    """Batches of B < n: the feature form equals L2-normalised ψ_bᵀ K_bb ψ_b / B² with the
    explicit block (constant included), and its EMA."""
    rng = np.random.default_rng(1)
    F = rng.normal(size=(50, 5))
    Psi = rng.normal(size=(50, 3))
    K = F @ F.T / 5.0 + 0.1
    mu = None
    for idx in batches(50, 16, 7, seed=3):
        P = Psi[idx] / np.sqrt((Psi[idx] ** 2).mean(0))
        r = np.diag(P.T @ K[np.ix_(idx, idx)] @ P) / 16**2
        mu = r if mu is None else 0.9 * mu + 0.1 * r
    got = eigenvalue_estimate(Psi, F, iterations=7, batch_size=16, seed=3, ema=0.9, div=5.0, const=0.1)
    assert np.allclose(got, mu, rtol=1e-12)
    with pytest.raises(ValueError, match="same n"):
        eigenvalue_estimate(Psi[:10], F, iterations=1)


def test_fit_draws_the_batches_of_batches():
    """NeuralEF.fit trains on exactly the rows batches(n, B, iterations, seed) yields."""
    seen = []

    def fn(Xb):
        seen.append(np.asarray(Xb)[:, 0].astype(int).tolist())
        return np.asarray(Xb, dtype=np.float64)

    X = np.stack([np.arange(20.0), np.linspace(-1, 1, 20)], 1)
    kern = RandomFeatureKernel(feature_fn=fn, n_samples=1, cache_bytes=0)
    NeuralEF(ParallelMLP(2, 2, seed=0), 2).fit(X, kern, iterations=5, batch_size=8, seed=4, progress=False,
                                               precompute_features=False)
    assert seen == [b.tolist() for b in batches(20, 8, 5, seed=4)]


def test_floor_expectation_matches_nef_floor_formula():
    """eq. (nef-floor): on exact eigenvectors the batch quotient ψ_bᵀK_bbψ_b/B² (σ not applied) has
    expectation μ_j + (n−B)/(B(n−1)) (κ̄_j − μ_j) over batches drawn without replacement."""
    rng = np.random.default_rng(2)
    n, B = 120, 16
    F = rng.normal(size=(n, 8)) * np.linspace(2.0, 0.2, 8)
    K = F @ F.T
    lam, U = np.linalg.eigh(K)
    lam, U = lam[::-1][:4], U[:, ::-1][:, :4]
    mu, Psi = lam / n, U * math.sqrt(n)
    kbar = (U**2 * np.diag(K)[:, None]).sum(0)
    predicted = mu + (n - B) / (B * (n - 1)) * (kbar - mu)
    r = np.mean([np.diag(Psi[idx].T @ K[np.ix_(idx, idx)] @ Psi[idx]) / B**2 for idx in batches(n, B, 6000, seed=0)], 0)
    assert np.allclose(r, predicted, rtol=0.03)
    assert np.all(predicted[1:] > 1.1 * mu[1:])  # the inflation the floor control guards against
