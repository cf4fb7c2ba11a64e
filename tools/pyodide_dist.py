"""The Pyodide distribution the book's in-browser (JupyterLite) pages are built with, offline.

    python tools/pyodide_dist.py            # fetch (once), verify, print the folder

JupyterLite's Pyodide kernel (jupyterlite-pyodide-kernel 0.8.6) expects Pyodide 314.0.6 and by
default loads it, and every package, from the jsDelivr CDN. For a book that works without a
network we serve, from the book itself,

* the Pyodide core from the npm package ``pyodide@314.0.6`` (``npm pack``: pyodide.mjs,
  pyodide.asm.mjs/.wasm, python_stdlib.zip, pyodide-lock.json), tarball SHA-256 pinned below;
* the pure-Python wheels the kernel loads when it starts (micropip; IPython and its
  dependencies; jedi, parso; comm), from PyPI with pinned SHA-256 (``pip download
  --require-hashes``). Pyodide's own builds of these wheels are on its CDN only; the PyPI wheels
  have other hashes, so their ``pyodide-lock.json`` entries get the PyPI file's SHA-256.

What no registry we can reach serves is every *compiled* Pyodide package: NumPy, SciPy,
Matplotlib, scikit-learn, ... are emscripten builds published on Pyodide's CDN only (PyPI has no
``pyemscripten`` wheel of them). Their ``pyodide-lock.json`` entries are rewritten to absolute
CDN URLs (``CDN``), so a hosted book loads them when a cell imports them and an offline copy
fails with a network error at that import. :data:`LOCAL` lists what is served locally.

The result goes to ``$KREPES_CACHE/pyodide-314.0.6`` (default ``~/.cache/krepes``), written to a
temporary folder and renamed when complete, and is reused when its stamp matches the pins:

    <cache>/pyodide/pyodide/*     the distribution (the layout JupyterLite's ``--pyodide`` expects)
    <cache>/piplite/*.whl         wheels not in the Pyodide lock file (comm), for piplite
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "314.0.6"
NPM_SHA256 = "d78ac549b28a2a58600cd06f44e017024151775f8c6b2d73fab1475400d38ea2"
CDN = f"https://cdn.jsdelivr.net/pyodide/v{VERSION}/full/"
#: files of the npm package the kernel needs
CORE = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json",
        "pyodide.js", "package.json"]
#: wheel file name → SHA-256 of the PyPI file; all but comm are entries of pyodide-lock.json
WHEELS = {
    "micropip-0.11.1-py3-none-any.whl": "768de165adb8e66906039d8fec4127a57f522dfdf8e6fbff877a4616941ecfd3",
    "asttokens-3.0.1-py3-none-any.whl": "15a3ebc0f43c2d0a50eeafea25e19046c68398e487b9f1f5b517f7c0f40f976a",
    "decorator-5.2.1-py3-none-any.whl": "d316bb415a2d9e2d2b3abcc4084c6502fc09240e292cd76a76afc106a1c8e04a",
    "executing-2.2.1-py2.py3-none-any.whl": "760643d3452b4d777d295bb167ccc74c64a81df23fb5e08eff250c425a4b2017",
    "ipython-9.12.0-py3-none-any.whl": "0f2701e8ee86e117e37f50563205d36feaa259d2e08d4a6bc6b6d74b18ce128d",
    "jedi-0.19.2-py2.py3-none-any.whl": "a8ef22bde8490f57fe5c7681a3c83cb58874daf72b4784de3cce5b6ef6edb5b9",
    "matplotlib_inline-0.2.1-py3-none-any.whl": "d56ce5156ba6085e00a9d54fead6ed29a9c47e215cd1bba2e976ef39f5710a76",
    "parso-0.8.6-py2.py3-none-any.whl": "2c549f800b70a5c4952197248825584cb00f033b29c692671d3bf08bf380baff",
    "prompt_toolkit-3.0.52-py3-none-any.whl": "9aac639a3bbd33284347de5ad8d68ecc044b91a762dc39b7c21095fcd6a19955",
    "pure_eval-0.2.3-py3-none-any.whl": "1db8e35b67b3d218d818ae653e27f06c3aa420901fa7b081ca98cbedc874e0d0",
    "pygments-2.20.0-py3-none-any.whl": "81a9e26dd42fd28a23a2d169d86d7ac03b46e2f8b59ed4698fb4785f946d0176",
    "six-1.17.0-py2.py3-none-any.whl": "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    "stack_data-0.6.3-py3-none-any.whl": "d5558e0c25a4cb0853cddad3d77da9891a08cb85dd9f9f91b9f8cd66e511e695",
    "traitlets-5.14.3-py3-none-any.whl": "b74e89e397b1ed28cc831db7aea759ba6640cb3de13090ca145426688ff1ac4f",
    "wcwidth-0.6.0-py3-none-any.whl": "1a3a1e510b553315f8e146c54764f4fb6264ffad731b3d78088cdb1478ffbdad",
    "comm-0.2.3-py3-none-any.whl": "c615d91d75f7f04f095b30d1c1711babd43bdc6419c1be9886a85f2f4e489417",
}
#: packages served from the book (lock-file names); everything else in the lock file is on the CDN
LOCAL = ["micropip", "asttokens", "decorator", "executing", "ipython", "jedi", "matplotlib-inline", "parso",
         "prompt-toolkit", "pure-eval", "pygments", "six", "stack-data", "traitlets", "wcwidth"]
NOT_IN_LOCK = ["comm-0.2.3-py3-none-any.whl"]


def cache_dir() -> Path:
    base = Path(os.environ.get("KREPES_CACHE") or Path.home() / ".cache" / "krepes")
    return base.expanduser().resolve() / f"pyodide-{VERSION}"


def _stamp() -> str:
    return hashlib.sha256(json.dumps([VERSION, NPM_SHA256, CDN, WHEELS, LOCAL], sort_keys=True).encode()).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _npm_pack(dest: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("pyodide_dist: `npm` is needed once to fetch the Pyodide core (pyodide@"
                         f"{VERSION} from the npm registry): install Node.js/npm (Debian: apt-get install npm).")
    proc = subprocess.run([npm, "pack", f"pyodide@{VERSION}", "--pack-destination", str(dest), "--silent"],
                          capture_output=True, text=True)
    tgz = dest / f"pyodide-{VERSION}.tgz"
    if proc.returncode or not tgz.is_file():
        raise SystemExit(f"pyodide_dist: npm pack pyodide@{VERSION} failed:\n{proc.stdout}\n{proc.stderr}")
    got = _sha256(tgz)
    if got != NPM_SHA256:
        raise SystemExit(f"pyodide_dist: {tgz.name} has SHA-256 {got}, expected {NPM_SHA256}; refusing it.")
    return tgz


def _pip_download(dest: Path) -> None:
    req = dest / "requirements.txt"
    req.write_text("".join(f"{name.split('-')[0].replace('_', '-')}=={name.split('-')[1]} --hash=sha256:{sha}\n"
                           for name, sha in WHEELS.items()))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
           "--python-version", "3.14", "--platform", "any", "--implementation", "py", "--abi", "none",
           "-d", str(dest), "-r", str(req), "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"pyodide_dist: pip download of the kernel's wheels failed:\n{proc.stdout}\n{proc.stderr}")
    for name, sha in WHEELS.items():  # pip checked the hashes; check the file names too
        if _sha256(dest / name) != sha:
            raise SystemExit(f"pyodide_dist: {name} does not match its pinned SHA-256.")


def rewrite_lock(lock: dict, local_sha: dict) -> dict:
    """Local entries get the served file's SHA-256; every other entry an absolute CDN URL."""
    for key, pkg in lock["packages"].items():
        if key in LOCAL:
            pkg["sha256"] = local_sha[pkg["file_name"]]
        elif not pkg["file_name"].startswith(("http://", "https://")):
            pkg["file_name"] = CDN + pkg["file_name"]
    return lock


def ensure(quiet: bool = False) -> Path:
    """The verified distribution folder (fetched on first use); see the module docstring."""
    out = cache_dir()
    stamp = out / "STAMP"
    if stamp.is_file() and stamp.read_text().strip() == _stamp():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".pyodide-") as tmp:
        tmp = Path(tmp)
        if not quiet:
            print(f"pyodide_dist: fetching pyodide@{VERSION} (npm) and {len(WHEELS)} wheels (PyPI)", flush=True)
        tgz = _npm_pack(tmp)
        dl = tmp / "wheels"
        dl.mkdir()
        _pip_download(dl)
        build = tmp / "build"
        dist = build / "pyodide" / "pyodide"
        dist.mkdir(parents=True)
        with tarfile.open(tgz) as tar:
            for name in CORE:
                member = tar.getmember(f"package/{name}")
                with tar.extractfile(member) as src, open(dist / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        piplite = build / "piplite"
        piplite.mkdir()
        for name in WHEELS:
            shutil.copyfile(dl / name, (piplite if name in NOT_IN_LOCK else dist) / name)
        lock = json.loads((dist / "pyodide-lock.json").read_text())
        missing = [k for k in LOCAL if k not in lock["packages"]]
        if missing:
            raise SystemExit(f"pyodide_dist: {missing} are not in pyodide-lock.json {VERSION}")
        names = {lock["packages"][k]["file_name"] for k in LOCAL}
        if names != set(WHEELS) - set(NOT_IN_LOCK):
            raise SystemExit(f"pyodide_dist: lock file names {sorted(names)} differ from the pinned wheels")
        rewrite_lock(lock, {n: WHEELS[n] for n in names})
        (dist / "pyodide-lock.json").write_text(json.dumps(lock))
        (build / "STAMP").write_text(_stamp() + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(build, out)
    if not quiet:
        print(f"pyodide_dist: {out}", flush=True)
    return out


if __name__ == "__main__":
    print(ensure())
