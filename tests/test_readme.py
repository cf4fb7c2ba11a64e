"""The README's "Use it on your own data" block runs as written (with the offline data)."""
import contextlib
import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(name):
    text = (ROOT / "README.md").read_text()
    body = text.split(f"<!-- snippet:{name} -->")[1].split(f"<!-- /snippet:{name} -->")[0]
    return "\n".join(ln for ln in body.strip().splitlines() if not ln.startswith("```"))


def _run(name):
    """Execute the README block ``name`` with the Adult files; return (printed lines, namespace)."""
    from krepes_lib import data

    try:
        data.find_file("adult", "adult.data")
    except FileNotFoundError:
        pytest.skip("the Adult files are not in KREPES_DATA")
    out = io.StringIO()
    ns = {}
    with contextlib.redirect_stdout(out):
        exec(compile(_block(name), "README.md", "exec"), ns)
    return out.getvalue().splitlines(), ns


def test_readme_api_snippet_runs():
    lines, ns = _run("api")
    acc = float(lines[0])
    assert 0.5 < acc <= 1.0
    assert ns["top"].indices.shape == (2000, 5)
    assert len(ns["hist"].loss) == 5
    s = ns["audit"].summary()  # at the defaults the README's audit converges and its step lowers its loss
    assert s["cg_converged"] and s["cg_relative_residual"] <= 1e-4 and not s["loss_rose"]
    assert s["damping_accepted"] == s["damping"] == 1e-2 and s["loss_after"] < s["loss_before"]


def test_readme_network_audit_snippet_runs():
    pytest.importorskip("torch")
    lines, ns = _run("neural")
    acc = float(lines[-1])
    assert 0.5 < acc <= 1.0
    assert ns["audit"].loss_after < ns["audit"].loss_before
    assert ns["top"].indices.shape == (500, 5)
