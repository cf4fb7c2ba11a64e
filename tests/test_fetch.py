"""data_scripts.fetch against a local HTTP server (127.0.0.1, in a thread); no internet.

The registry is monkeypatched with a toy dataset whose files the server serves; the data
directory search path points at temporary folders through ``KREPES_DATA``.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
import time
from collections import Counter

import numpy as np
import pytest

from data_scripts import fetch as F
from krepes_lib.data import registry
from krepes_lib.data.registry import DatasetEntry, RemoteFile

PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files`` (path -> bytes); honours ``Range: bytes=N-`` when asked."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.hits[self.path] += 1
        srv.ranges.append(self.headers.get("Range"))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if srv.truncate_next:  # announce the full length, send half, hang up
            srv.truncate_next = False
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.hits, srv.ranges = {}, Counter(), []
    srv.honour_range, srv.truncate_next = True, False
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def dead_url():
    """A URL on a port nothing listens on (connection refused at once)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/nothing"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("KREPES_DATA", str(d))
    return d


def _install(monkeypatch, *files: RemoteFile, name: str = "toy") -> None:
    entry = DatasetEntry(name, "toy dataset for tests", "http://example.invalid", "none", files)
    monkeypatch.setattr(registry, "DATASETS", {**registry.DATASETS, name: entry})


def _toy(server, sha=SHA, path="/toy.bin", urls=None, size=len(PAYLOAD)) -> RemoteFile:
    server.files[path] = PAYLOAD
    return RemoteFile("toy.bin", tuple(urls) if urls else (server.url + path,), size, sha)


# ------------------------------------------------------------------------------------------
def test_registry_is_complete_and_well_formed():
    expected = {"mnist", "fashion_mnist", "cifar10", "covtype", "adult", "higgs", "bank"}
    assert expected <= set(registry.names())
    must_have = {
        "mnist": {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "mnist_5k.csv.gz"},
        "fashion_mnist": {"train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"},
        "cifar10": {"cifar-10-python.tar.gz", "cifar10_test_jpg_YoongiKim.tar.gz",
                    "cifar10_train_jpg_YoongiKim.tar.gz",
                    "kaggle_cifar10_train_first200_png.tar.gz"},
        "covtype": {"covtype.data.gz", "forest_cover_kaggle_train.csv"},
        "adult": {"adult.data", "adult.test", "adult.names"},
        "higgs": {"HIGGS.csv.gz", "higgs_test_5k.csv"},
        "bank": {"bank.zip"},
    }  # fmt: skip
    for ds, fns in must_have.items():
        assert fns <= {f.filename for f in registry.get(ds).files}, ds
    for entry in registry.DATASETS.values():
        for rf in entry.files:
            assert rf.kind in ("official", "substitute")
            assert rf.sha256 is None or (len(rf.sha256) == 64 and int(rf.sha256, 16) >= 0)
            assert rf.checksum_source, f"{entry.name}/{rf.filename} needs a checksum source"
            for url in rf.urls:
                assert url.startswith(("http://", "https://"))
            if rf.kind == "official":
                assert rf.urls, f"{entry.name}/{rf.filename} official without URL"
    assert registry.get_file("mnist", "train-images-idx3-ubyte.gz").sha256 == (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    )
    assert registry.get_file("higgs", "HIGGS.csv.gz").sha256 == (
        "ea302c18164d4e3d916a1e2e83a9a8d07069fa6ebc7771e4c0540d54e593b698"
    )
    with pytest.raises(KeyError, match="registered datasets"):
        registry.get("nope")


def test_fresh_download_verifies_and_renames(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    out = F.fetch("toy", progress=False)
    path = data_dir / "toy" / "toy.bin"
    assert out == {"toy.bin": path}
    assert path.read_bytes() == PAYLOAD
    assert not (data_dir / "toy" / "toy.bin.part").exists()
    assert server.hits["/toy.bin"] == 1
    assert [s.status for s in F.verify("toy")] == ["ok"]


def test_verified_file_is_not_downloaded_again(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    F.fetch("toy", progress=False)
    F.fetch("toy", progress=False)
    assert server.hits["/toy.bin"] == 1


def test_copy_in_another_data_dir_is_used(server, tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    (second / "toy").mkdir(parents=True)
    (second / "toy" / "toy.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("KREPES_DATA", f"{first}{os.pathsep}{second}")
    _install(monkeypatch, _toy(server))
    assert F.fetch("toy", progress=False)["toy.bin"] == second / "toy" / "toy.bin"
    assert server.hits["/toy.bin"] == 0
    assert not (first / "toy").exists()


def test_resume_from_partial_part_with_range(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.bin.part").write_bytes(PAYLOAD[:123_456])
    F.fetch("toy", progress=False)
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=123456-"]
    assert not (data_dir / "toy" / "toy.bin.part").exists()


def test_truncated_transfer_is_resumed(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    server.truncate_next = True
    F.fetch("toy", progress=False)
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert server.ranges[0] is None and server.ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_ignoring_range_restarts_cleanly(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    server.honour_range = False
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.bin.part").write_bytes(b"x" * 1000)  # garbage, will be replaced
    F.fetch("toy", progress=False)
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert server.hits["/toy.bin"] == 1


def test_stale_part_is_retried_from_zero(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.bin.part").write_bytes(b"\0" * 5000)  # wrong prefix bytes
    F.fetch("toy", progress=False)
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=5000-", None]


def test_checksum_mismatch_raises_and_leaves_nothing(server, data_dir, monkeypatch):
    wrong = "0" * 64
    _install(monkeypatch, _toy(server, sha=wrong))
    with pytest.raises(F.ChecksumError) as err:
        F.fetch("toy", progress=False)
    msg = str(err.value)
    assert "toy.bin" in msg and wrong in msg and SHA in msg
    assert "python -m data_scripts.fetch toy" in msg
    assert not (data_dir / "toy" / "toy.bin").exists()
    assert not (data_dir / "toy" / "toy.bin.part").exists()


def test_mirrors_fall_through_on_network_errors(server, data_dir, dead_url, monkeypatch):
    rf = _toy(server, urls=[dead_url, server.url + "/missing", server.url + "/toy.bin"])
    _install(monkeypatch, rf)
    F.fetch("toy", progress=False)
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert server.hits["/missing"] == 1 and server.hits["/toy.bin"] == 1


def test_every_mirror_failing_raises_fetch_error(server, data_dir, dead_url, monkeypatch):
    _install(monkeypatch, _toy(server, urls=[dead_url, server.url + "/missing"]))
    with pytest.raises(F.FetchError) as err:
        F.fetch("toy", progress=False)
    assert not isinstance(err.value, F.ChecksumError)
    assert dead_url in str(err.value) and "HTTP 404" in str(err.value)
    assert not (data_dir / "toy" / "toy.bin").exists()


def test_offline_fetch_and_verify_use_present_files(data_dir, dead_url, monkeypatch):
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.bin").write_bytes(PAYLOAD)
    (data_dir / "toy" / "bad.bin").write_bytes(b"corrupt")
    files = (
        RemoteFile("toy.bin", (dead_url,), len(PAYLOAD), SHA),
        RemoteFile("bad.bin", (dead_url,), None, SHA),
        RemoteFile("gone.bin", (dead_url,), None, SHA),
        RemoteFile("nosum.bin", (dead_url,), None, None),
    )
    _install(monkeypatch, *files)
    (data_dir / "toy" / "nosum.bin").write_bytes(b"abc")
    status = {s.filename: s for s in F.verify("toy")}
    assert status["toy.bin"].status == "ok" and status["toy.bin"].path == data_dir / "toy" / "toy.bin"
    assert status["bad.bin"].status == "mismatch"
    assert status["bad.bin"].actual == hashlib.sha256(b"corrupt").hexdigest()
    assert status["gone.bin"].status == "missing" and status["gone.bin"].path is None
    assert status["nosum.bin"].status == "unverified"
    # offline: the verified file needs no network
    assert F.fetch("toy", files=["toy.bin"], progress=False) == {"toy.bin": data_dir / "toy" / "toy.bin"}


def test_unverified_file_is_refused_unless_allowed(server, data_dir, monkeypatch, capsys):
    _install(monkeypatch, _toy(server, sha=None))
    with pytest.raises(F.UnverifiedFileError, match="--allow-unverified"):
        F.fetch("toy", progress=False)
    assert server.hits["/toy.bin"] == 0
    F.fetch("toy", allow_unverified=True, progress=False)
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD
    assert SHA in capsys.readouterr().err


def test_offline_only_files_are_skipped_or_explained(data_dir, monkeypatch):
    _install(monkeypatch, RemoteFile("local.tar", (), 10, SHA, kind="substitute", note="Built by hand."))
    assert F.fetch("toy", progress=False) == {}
    with pytest.raises(F.FetchError, match="offline-only"):
        F.fetch("toy", files=["local.tar"], progress=False)


def test_cli(server, data_dir, monkeypatch, capsys):
    _install(monkeypatch, _toy(server))
    assert F.main(["--list"]) == 0
    assert "toy.bin" in capsys.readouterr().out
    assert F.main(["toy", "--no-progress"]) == 0
    assert (data_dir / "toy" / "toy.bin").is_file()
    assert F.main(["toy", "--verify"]) == 0
    assert "toy.bin: ok" in capsys.readouterr().out
    assert F.main(["no_such_dataset"]) == 2
    assert F.main([]) == 2
    other = data_dir.parent / "elsewhere"
    assert F.main(["toy", "--data-dir", str(other), "--no-progress"]) == 0
    assert server.hits["/toy.bin"] == 1  # the verified copy in KREPES_DATA is reused


# ------------------------------------------------------------------------------------------
# issue 12: bounded in time, honest about the .part, locked, clear on unwritable folders
# ------------------------------------------------------------------------------------------
@pytest.fixture
def black_hole():
    """A URL whose server accepts the connection (kernel backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"http://127.0.0.1:{s.getsockname()[1]}/hang"
    s.close()


@pytest.fixture
def stall_server():
    """Sends the first half of PAYLOAD with the full Content-Length, then stalls (no close)."""
    release = threading.Event()

    class Stall(_Handler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            release.wait(10)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/toy.bin"
    release.set()
    srv.shutdown()
    srv.server_close()


def test_black_holed_network_fails_within_the_deadline(black_hole, data_dir, monkeypatch):
    # three mirrors x three attempts x 0.4 s would take 3.6 s without an overall deadline
    _install(monkeypatch, RemoteFile("toy.bin", (black_hole,) * 3, len(PAYLOAD), SHA))
    t0 = time.monotonic()
    with pytest.raises(F.FetchError, match="deadline") as err:
        F.fetch("toy", progress=False, deadline=1.0, timeout=0.4)
    assert time.monotonic() - t0 < 1.0 + 0.4 + 0.5  # deadline + at most one read timeout
    assert "No partial download was kept" in str(err.value)
    assert not (data_dir / "toy" / "toy.bin.part").exists()


def test_failure_message_claims_a_part_only_when_one_exists(stall_server, dead_url, data_dir,
                                                            monkeypatch):
    _install(monkeypatch, RemoteFile("toy.bin", (dead_url,), len(PAYLOAD), SHA))
    with pytest.raises(F.FetchError) as err:
        F.fetch("toy", progress=False)
    assert "No partial download was kept" in str(err.value) and "is kept at" not in str(err.value)
    assert not (data_dir / "toy" / "toy.bin.part").exists()
    # half the bytes arrive, then the connection stalls: the .part is kept and its size named
    _install(monkeypatch, RemoteFile("toy.bin", (stall_server,), len(PAYLOAD), SHA))
    with pytest.raises(F.FetchError) as err:
        F.fetch("toy", progress=False, deadline=1.5, timeout=0.3)
    part = data_dir / "toy" / "toy.bin.part"
    assert part.stat().st_size == len(PAYLOAD) // 2
    assert f"partial download of {len(PAYLOAD) // 2:,} bytes is kept at {part}" in str(err.value)


def test_cli_deadline_message(black_hole, data_dir, monkeypatch, capsys):
    _install(monkeypatch, RemoteFile("toy.bin", (black_hole,), len(PAYLOAD), SHA))
    assert F.main(["toy", "--no-progress", "--deadline", "0.5", "--timeout", "0.2"]) == 1
    err = capsys.readouterr().err
    assert "deadline" in err and "Traceback" not in err
    assert F.main(["toy", "--deadline", "0"]) == 2


def test_concurrent_fetches_of_one_file_are_locked(server, data_dir, monkeypatch, capsys):
    import fcntl

    _install(monkeypatch, _toy(server))
    (data_dir / "toy").mkdir(parents=True)
    lock = data_dir / "toy" / "toy.bin.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another fetch holds the file
    try:
        with pytest.raises(F.FetchError, match="another fetch still holds the lock"):
            F.fetch("toy", progress=False, deadline=0.6)
        assert server.hits["/toy.bin"] == 0  # it waited instead of downloading beside it
        assert "waiting for it to finish" in capsys.readouterr().err
        results = []
        waiter = threading.Thread(target=lambda: results.append(F.fetch("toy", progress=False)))
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive() and server.hits["/toy.bin"] == 0
        # the holder finishes the file; the waiter then uses it without downloading
        (data_dir / "toy" / "toy.bin").write_bytes(PAYLOAD)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    waiter.join(10)
    assert results == [{"toy.bin": data_dir / "toy" / "toy.bin"}]
    assert server.hits["/toy.bin"] == 0


def test_two_threads_download_once(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    out = []
    threads = [threading.Thread(target=lambda: out.append(F.fetch("toy", progress=False)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(out) == 2 and server.hits["/toy.bin"] == 1
    assert (data_dir / "toy" / "toy.bin").read_bytes() == PAYLOAD


def test_unwritable_data_dir_is_a_clear_error(server, tmp_path, monkeypatch, capsys):
    _install(monkeypatch, _toy(server))
    monkeypatch.setenv("KREPES_DATA", str(tmp_path / "data"))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(F.FetchError, match="cannot write to"):
        F.fetch("toy", data_dir=blocker / "sub", progress=False)
    assert F.main(["toy", "--no-progress", "--data-dir", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert "--data-dir" in err and "Traceback" not in err and "PermissionError" not in err


def test_force_downloads_again_and_replaces_a_corrupt_copy(server, data_dir, monkeypatch):
    _install(monkeypatch, _toy(server))
    F.fetch("toy", progress=False)
    assert server.hits["/toy.bin"] == 1
    target = data_dir / "toy" / "toy.bin"
    target.write_bytes(PAYLOAD[:-1] + bytes([PAYLOAD[-1] ^ 1]))  # one flipped bit
    assert F.main(["toy", "--force", "--no-progress", "--data-dir", str(data_dir)]) == 0
    assert server.hits["/toy.bin"] == 2 and target.read_bytes() == PAYLOAD
