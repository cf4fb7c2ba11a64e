"""NeuralEF's networks: k eigenfunction networks evaluated in parallel (MLP, CNN), a shared trunk,
the L2 batch normalisation, and the small CNN classifier whose eNTK Figs. 4–5 study.

Book: *NeuralEF vs Nyström* (``book/neuralef.md``), eq. (nef-l2bn); seed 002 §3.2, §4.2, App. B.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["L2BatchNorm", "ParallelMLP", "SharedMLP", "ParallelCNN", "SmallCNN", "train_classifier"]

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _tdtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = np.dtype(dtype or "float32").name
    if name not in _TORCH_DTYPES:
        raise ValueError(f"dtype={dtype!r} must be 'float32' or 'float64'.")
    return _TORCH_DTYPES[name]


class L2BatchNorm(nn.Module):
    """L2 batch normalisation, eq. (nef-l2bn) = seed eq. (16): h_j / σ_j per output j.

    Training: σ_j = sqrt(mean_b h_j(x_b)²) of the batch, and an EMA of σ_j is recorded
    (``running_sigma``, decay ``ema``); evaluation divides by the EMA. The first batch
    initialises the EMA.
    """

    def __init__(self, k: int, ema: float = 0.99, eps: float = 1e-12):
        super().__init__()
        if not 0 <= ema < 1:
            raise ValueError(f"ema={ema} must be in [0, 1) (the EMA decay of σ).")
        self.ema, self.eps = float(ema), float(eps)
        self.register_buffer("running_sigma", torch.ones(k))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, H):
        if self.training:
            sigma = torch.sqrt((H * H).mean(0) + self.eps)
            with torch.no_grad():
                s = sigma.detach().to(self.running_sigma.dtype)
                if bool(self.initialised):
                    self.running_sigma.mul_(self.ema).add_((1.0 - self.ema) * s)
                else:
                    self.running_sigma.copy_(s)
                    self.initialised.fill_(True)
            return H / sigma
        return H / self.running_sigma.to(H.dtype)


class _SinCos(nn.Module):
    """Half the units sin, half cos (seed App. B, classic kernels)."""

    def forward(self, H):
        w = H.shape[-1] // 2
        return torch.cat([torch.sin(H[..., :w]), torch.cos(H[..., w:])], dim=-1)


def _activation(name):
    acts = {"sincos": _SinCos(), "relu": nn.ReLU(), "tanh": nn.Tanh(), "erf": None}
    if name not in acts or acts[name] is None:
        raise ValueError(f"activation={name!r} is unknown; choose 'sincos', 'relu' or 'tanh'.")
    return acts[name]


class ParallelMLP(nn.Module):
    """k independent MLPs d_in → width → … → 1, evaluated as one batched product.

    Network j has its own weights W_l[j] (no sharing): output j depends only on w_j, as
    NeuralEF's k networks (seed §3.2). ``depth`` counts linear layers (seed: 3). Weights are
    initialised like :class:`torch.nn.Linear` (U(±1/sqrt(fan_in))) from ``seed``.
    Input (B, d_in) → output (B, k).
    """

    def __init__(self, d_in: int, k: int, width: int = 32, depth: int = 3,
                 activation: str = "sincos", seed: int = 0, dtype="float32"):
        super().__init__()
        if depth < 1 or width < 1 or k < 1 or d_in < 1:
            raise ValueError("ParallelMLP: d_in, k, width and depth must be positive integers.")
        g = torch.Generator().manual_seed(int(seed))
        dt = _tdtype(dtype)
        sizes = [d_in] + [width] * (depth - 1) + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter((torch.rand(k, a, b, generator=g, dtype=dt) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(k, 1, b, generator=g, dtype=dt) * 2 - 1) * bound))
        self.act = _activation(activation)
        self.k = k

    def forward(self, X):
        W0, b0 = self.weights[0], self.biases[0]
        k, d, w = W0.shape
        # first layer of all k networks as one GEMM: X (B, d) @ [W0_1 … W0_k] (d, k·w)
        H = (X @ W0.permute(1, 0, 2).reshape(d, k * w)).reshape(-1, k, w).transpose(0, 1) + b0
        n = len(self.weights)
        if n > 1:
            H = self.act(H)
        for l in range(1, n):
            H = torch.baddbmm(self.biases[l], H, self.weights[l])
            if l < n - 1:
                H = self.act(H)
        return H[..., 0].T  # (B, k)


class SharedMLP(nn.Module):
    """One MLP trunk with k outputs (weight sharing, the seed's "future work" §6).

    Output j is no longer a function of its own weights only; the hand gradient (nef-grad)
    and one VJP still give the gradient of eq. (nef-loss) with its stop-gradients. A test
    point then costs one network pass instead of k.
    """

    def __init__(self, d_in: int, k: int, width: int = 256, depth: int = 3,
                 activation: str = "relu", seed: int = 0, dtype="float32"):
        super().__init__()
        torch.manual_seed(int(seed))
        dt = _tdtype(dtype)
        sizes = [d_in] + [width] * (depth - 1) + [k]
        layers = []
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, dtype=dt))
            if l < depth - 1:
                layers.append(_activation(activation))
        self.body = nn.Sequential(*layers)
        self.k = k

    def forward(self, X):
        return self.body(X)


class ParallelCNN(nn.Module):
    """k independent CNNs Conv5-MaxPool2-[BN]-ReLU-Conv5-MaxPool2-[BN]-ReLU-Linear-[BN]-ReLU-Linear
    (seed §4.2.1 / App. B: the CNN-GP kernel's architecture, "augmented with batch normalization",
    widths 32, 64, 128 in the seed).

    Network j has its own filters: the first convolution sees the same image for every network,
    so it is one ordinary convolution with k·c1 output channels (block j of the filters belongs to
    network j); the second is a grouped convolution (groups = k) and the linear layers are batched
    products. Max-pooling is taken before the ReLU (the two commute) and, with ``batch_norm``,
    before the batch normalisation — 4× fewer activations to normalise than BN on the 24×24 maps;
    BN is per channel, so it couples the samples of a batch but never two networks.
    Input (B, C·H·W) flattened row-major as (H, W, C) (the :class:`krepes_lib.data.Dataset`
    layout), ``image_shape`` = (H, W) or (H, W, C); output (B, k). Widths are per network.
    """

    def __init__(self, image_shape, k: int, widths=(8, 16), hidden: int = 32, batch_norm: bool = False,
                 seed: int = 0, dtype="float32"):
        super().__init__()
        torch.manual_seed(int(seed))
        self.image_shape = tuple(image_shape)
        H, W = self.image_shape[:2]
        C = self.image_shape[2] if len(self.image_shape) == 3 else 1
        if len(tuple(widths)) != 2 or min(int(w) for w in widths) < 1 or int(hidden) < 1 or int(k) < 1:
            raise ValueError(f"ParallelCNN: widths={widths!r} must be two positive channel counts, "
                             f"hidden={hidden} and k={k} positive integers.")
        c1, c2 = (int(w) for w in widths)
        self.k, self.C, self.c1, self.c2, self.hidden = int(k), C, c1, c2, int(hidden)
        dt = _tdtype(dtype)
        self.conv1 = nn.Conv2d(C, k * c1, 5, dtype=dt)  # shared input: block j of the filters is network j
        self.conv2 = nn.Conv2d(k * c1, k * c2, 5, groups=k, dtype=dt)
        h = ((H - 4) // 2 - 4) // 2
        w = ((W - 4) // 2 - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"image_shape={image_shape} is too small for two 5×5 conv + 2×2 pool stages.")
        self.flat = c2 * h * w
        self.fc1 = nn.Parameter(torch.randn(k, self.flat, hidden, dtype=dt) / math.sqrt(self.flat))
        self.b1 = nn.Parameter(torch.zeros(k, 1, hidden, dtype=dt))
        self.fc2 = nn.Parameter(torch.randn(k, hidden, 1, dtype=dt) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(k, 1, 1, dtype=dt))
        self.batch_norm = bool(batch_norm)
        if self.batch_norm:
            self.bn1 = nn.BatchNorm2d(k * c1, dtype=dt)
            self.bn2 = nn.BatchNorm2d(k * c2, dtype=dt)
            self.bn3 = nn.BatchNorm1d(k * hidden, dtype=dt)

    def forward(self, X):
        B = X.shape[0]
        H, W = self.image_shape[:2]
        img = X.reshape(B, H, W, self.C).permute(0, 3, 1, 2)  # (B, C, H, W)
        z = torch.max_pool2d(self.conv1(img), 2)
        z = torch.relu(self.bn1(z) if self.batch_norm else z)
        z = torch.max_pool2d(self.conv2(z), 2)
        z = torch.relu(self.bn2(z) if self.batch_norm else z)
        z = z.reshape(B, self.k, self.flat).transpose(0, 1)  # (k, B, flat)
        z = torch.baddbmm(self.b1, z, self.fc1)  # (k, B, hidden)
        if self.batch_norm:
            z = self.bn3(z.transpose(0, 1).reshape(B, self.k * self.hidden)).reshape(B, self.k, self.hidden)
            z = z.transpose(0, 1)
        return torch.baddbmm(self.b2, torch.relu(z), self.fc2)[..., 0].T


# A small CNN binary classifier (seed §4.2.2 uses ResNet-20; documented substitute)
class SmallCNN(nn.Module):
    """Conv3(c)-ReLU-MaxPool2-Conv3(c)-ReLU-MaxPool2-Linear(1) on (H, W, C) images; one logit."""

    def __init__(self, image_shape=(32, 32, 3), width: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(int(seed))
        H, W, C = image_shape
        self.image_shape = image_shape
        self.c1 = nn.Conv2d(C, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)
        self.fc = nn.Linear(width * (H // 4) * (W // 4), 1)

    def forward(self, X):
        H, W, C = self.image_shape
        x = X.reshape(-1, H, W, C).permute(0, 3, 1, 2)
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))[:, 0]


def train_classifier(model: nn.Module, X, y, epochs: int = 10, batch_size: int = 64,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True):
    """Logistic-loss training of a one-logit classifier with Adam; returns training accuracy."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in tqdm(range(epochs), desc="classifier", disable=not progress, leave=False):
        perm = rng.permutation(len(Xt))
        for s in range(0, len(Xt), batch_size):
            b = perm[s:s + batch_size]
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(model(Xt[b]), yt[b])
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(((model(Xt) > 0).float() == yt).float().mean())
