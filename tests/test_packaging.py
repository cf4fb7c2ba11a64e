"""Packaging invariants: environment.yml and pyproject.toml agree, notebooks are clean."""
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(req):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    want = dict(_split(r) for r in meta["dependencies"] + extras["test"] + extras["dask"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    got = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for r in items:
            if r.startswith("-") or r.split(">")[0].split("=")[0] in ("python", "pip"):
                continue
            name, spec = _split(r)
            got[name] = spec
    assert got == want


def test_dask_is_an_optional_extra():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith(("dask", "distributed")) for d in meta["dependencies"])
    assert {d.split(">")[0] for d in meta["optional-dependencies"]["dask"]} == {"dask", "distributed"}
    # import krepes_lib (krepes_lib.distributed included) loads no Dask: a user without the extra
    code = "import sys, krepes_lib; assert 'krepes_lib.distributed' in sys.modules; " \
           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_gpu_extra_is_optional():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("cupy" in d for d in meta["dependencies"])
    assert any(d.startswith("cupy-cuda12x") for d in meta["optional-dependencies"]["gpu"])


def test_jupyter_book_is_version_1():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    jb = [d for d in meta["dependencies"] if d.startswith("jupyter-book")]
    assert jb == ["jupyter-book>=1.0.4,<2"]


def test_torch_is_an_optional_extra():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("torch") for d in meta["dependencies"])
    assert any(d.startswith("torch") for d in meta["optional-dependencies"]["neural"])


def test_readme_has_the_blocks_ci_runs():
    text = (ROOT / "README.md").read_text()
    for name in ("setup", "test", "main"):
        assert f"<!-- ci:{name} -->" in text and f"<!-- /ci:{name} -->" in text, name
    main = text.split("<!-- ci:main -->")[1].split("<!-- /ci:main -->")[0]
    assert "--profile quick" in main
