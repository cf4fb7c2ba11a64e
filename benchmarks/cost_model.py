"""The paper-scale plan from a measurement here: eNTK features per row, counted and timed.

Usage::

    python benchmarks/cost_model.py                 # about 2-5 min on one CPU core
    python benchmarks/cost_model.py --json /tmp/plan.json --scaling 1.7

What is measured (this machine, one thread, float32): the FLOPs of one row's eNTK features
(``TorchNTK.features``, sketch of S directions: S forward-mode products, eq. (entk-sketch)),
counted by ``torch.utils.flop_counter.FlopCounterMode``, and their wall time — for the small
CNN of the v3 experiments on 28×28 MNIST rows (200 rows) and for a ResNet-50 (torchvision's
layout, written here: bottleneck blocks 3-4-6-3, the 2048-d pooled representation, 224×224×3
rows) on two rows. What is **estimated**: the time on a GPU, as the counted FLOPs divided by a
sustained rate — a stated share of the H200's plain fp32 peak (67 TFLOP/s, vendor datasheet);
the GPU check (``tools/gpu_check.sh``) is what replaces it with a measurement. The audit's own
passes (kernel blocks K = Φ_X Φ_Lᵀ of width S·O, GGN products) are counted the same way and
are small next to the features. ``--scaling`` is the parallel efficiency from 1 to 2 workers
(measured by ``benchmarks/bench_dask.py``), applied to the GPUs needed for a one-hour audit.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

H200_FP32_PEAK = 67e12  # FLOP/s, plain fp32 (vendor datasheet; /work/.library/device/H200.md)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class ResNet50(nn.Module):
    """torchvision's resnet50 layout without the classifier: rows (n, 3·224·224) → (n, 2048)."""

    def __init__(self, side=224):
        super().__init__()
        self.side = side
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers, inplanes = [], 64
        for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
            down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(planes * 4))
            blk = [Bottleneck(inplanes, planes, stride, down)]
            inplanes = planes * 4
            blk += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*blk))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = x.reshape(x.shape[0], 3, self.side, self.side)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


def measure(net, d, rows, S, repeats=1, xp=np, budget=None):
    """(FLOPs per row counted, seconds per row, outputs O, parameters p, feature width) of eNTK
    features, the rows in namespace ``xp`` (CuPy: CUDA tensors through DLPack)."""
    from torch.utils.flop_counter import FlopCounterMode

    from krepes_lib.backend import synchronize, to_device
    from krepes_lib.neural import TorchNTK

    kw = {} if budget is None else {"memory_budget": int(budget)}
    k = TorchNTK(net.eval(), implementation="sketch", sketch_size=S, contraction="sum", cache_bytes=0, **kw)
    X = to_device(np.random.default_rng(0).random((rows, d), dtype=np.float32), xp)
    k.features(X[:1])                       # warm-up: copies, plan, directions
    with FlopCounterMode(display=False) as fc:
        k.features(X[:1])
    flops = fc.get_total_flops()
    k.features(X[: min(rows, 8)])           # warm-up at a batch (kernels, allocator)
    best = math.inf
    for _ in range(repeats):
        synchronize(xp)
        t0 = time.perf_counter()
        F = k.features(X)
        synchronize(xp)
        best = min(best, time.perf_counter() - t0)
    with torch.no_grad():
        O = int(net(torch.zeros((1, d))).shape[1])
    return flops, best / rows, O, int(sum(p.numel() for p in net.parameters())), F.shape[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--S", type=int, default=8, help="sketch directions (v3's default)")
    ap.add_argument("--rows", type=int, default=1_281_167, help="ImageNet-1k training rows")
    ap.add_argument("--efficiency", type=float, nargs="+", default=[0.25, 0.5],
                    help="assumed sustained share of the H200 fp32 peak")
    ap.add_argument("--scaling", type=float, default=None,
                    help="parallel efficiency 1→2 workers (speed-up/2) measured by bench_dask.py")
    ap.add_argument("--small-rows", type=int, default=200)
    ap.add_argument("--resnet-rows", type=int, default=2)
    ap.add_argument("--budget-gb", type=float, default=None,
                    help="TorchNTK's memory budget in GiB (default the library's; on a GPU give it room)")
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                    help="time on one CPU thread (default) or on the GPU (CuPy rows, CUDA tensors)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--book", action="store_true", help="write book/generated/cost_plan.md")
    a = ap.parse_args(argv)
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    xp, where = np, "one CPU thread"
    if a.device == "gpu":
        from krepes_lib.backend import default_xp

        xp = default_xp()
        if xp is np:
            raise SystemExit("--device gpu: no usable GPU (CuPy and a CUDA device); use --device cpu.")
        try:
            p = xp.cuda.runtime.getDeviceProperties(0)
            where = p["name"].decode() if isinstance(p["name"], bytes) else str(p["name"])
        except Exception:  # a stand-in namespace
            where = xp.__name__
    from krepes_lib.neural.networks import SmallConvNet

    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    out = {"S": a.S, "load_before": load0}
    for name, net, d, rows in (("SmallConvNet 28×28×1", SmallConvNet((28, 28, 1), out=64), 784, a.small_rows),
                               ("ResNet-50 224×224×3", ResNet50(), 3 * 224 * 224, a.resnet_rows)):
        f, s, O, p, width = measure(net, d, rows, a.S, xp=xp,
                                    budget=None if a.budget_gb is None else a.budget_gb * 2**30)
        out[name] = dict(flops_per_row=f, s_per_row=s, gflops=f / s / 1e9, outputs=O, params=p,
                         feature_width=width, rows_timed=rows)
        say(f"- {name}: p = {p:,}, O = {O}, features of width {width}: {f / 1e9:.3f} GFLOP per row "
            f"(counted), {1e3 * s:.2f} ms per row on {where} ({f / s / 1e9:.2f} GFLOP/s; "
            f"{rows} rows timed) — measured")
    r50 = out["ResNet-50 224×224×3"]
    n, m = a.rows, int(math.ceil(math.sqrt(a.rows)))
    width = r50["feature_width"]
    pass_flops = 2.0 * n * m * width            # one kernel-block pass K = Φ_X Φ_Lᵀ
    say()
    say(f"Plan — ImageNet-1k, n = {n:,} rows, m = ⌈√n⌉ = {m}, ResNet-50 eNTK sketch S = {a.S} "
        f"(width S·O = {width}):")
    say()
    say(f"- features: {r50['flops_per_row'] / 1e9:.1f} GFLOP per row (counted); at the rate measured "
        f"here, {1e3 * r50['s_per_row']:.1f} ms per row on {where}, i.e. "
        f"{n * r50['s_per_row'] / 3600:,.1f} hours of it"
        + (f" — MEASURED: {1 / r50['s_per_row']:,.0f} rows/s per GPU" if a.device == "gpu" else ""))
    say(f"- one audit pass over the kernel blocks: {pass_flops / 1e12:.0f} TFLOP (counted, 2·n·m·width); "
        "the audit makes about six (gradient, CG products, the step)")
    plans = []
    eff2 = a.scaling
    for e in a.efficiency:
        rate = e * H200_FP32_PEAK
        per_row = r50["flops_per_row"] / rate
        rows_s = 1.0 / per_row
        gpu_h = n * per_row / 3600 + 6 * pass_flops / rate / 3600   # features once + ~6 passes
        gpus = gpu_h / (eff2 if eff2 else 1.0)
        plans.append(dict(efficiency=e, rows_per_s_per_gpu=rows_s, gpu_hours=gpu_h,
                          gpus_for_one_hour=math.ceil(gpus)))
        say(f"- **ESTIMATE** at {100 * e:.0f} % of the H200 fp32 peak (67 TFLOP/s): {rows_s:,.0f} rows/s "
            f"per GPU, {gpu_h:.2f} GPU-hours, {math.ceil(gpus)} GPU(s) for a one-hour audit"
            + (f" (parallel efficiency {eff2:.2f}: bench_dask's 1→2-worker split of the eNTK "
               "features' CPU time)" if eff2 else ""))
    out.update(n=n, m=m, pass_tflop=pass_flops / 1e12, plans=plans, scaling=eff2,
               load_after=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    say(f"\nLoad average before → after: {load0} → {out['load_after']}.")
    if a.book:
        from pathlib import Path

        path = Path(__file__).resolve().parents[1] / "book" / "generated" / "cost_plan.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        head = ["<!-- written by benchmarks/cost_model.py --book; do not edit -->",
                f"Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
                f"`python benchmarks/cost_model.py {' '.join(sys.argv[1:] if argv is None else argv)}`.", ""]
        path.with_suffix(".tmp").write_text("\n".join(head + lines) + "\n")
        os.replace(path.with_suffix(".tmp"), path)
    if a.json:
        with open(a.json + ".tmp", "w") as fh:
            json.dump(out, fh, indent=1)
        os.replace(a.json + ".tmp", a.json)


if __name__ == "__main__":
    main()
