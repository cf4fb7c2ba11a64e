"""The one timer (krepes_lib/timing.py): stages add up, calls are counted, best-of repeats."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from krepes_lib.timing import Timer, best_of, per_point


def test_timer_adds_up_stages_and_returns_call_results():
    T = Timer()
    with T("a"):
        time.sleep(0.01)
    with T("a"):
        pass
    out, sec = T.call(lambda: 41 + 1, "b")
    assert out == 42 and sec >= 0 and T.calls == {"a": 2, "b": 1}
    assert T.get("a") >= 0.009 and T.total == pytest.approx(T.get("a") + T.get("b")) and T.get("c") == 0
    with pytest.raises(ZeroDivisionError):  # a failing stage is still timed
        with T("err"):
            1 / 0
    assert "err" in T.seconds
    T.reset()
    assert T.seconds == {} and T.total == 0


def test_best_of_and_per_point_call_as_often_as_asked():
    calls = []
    assert best_of(lambda: calls.append(1), np, repeats=3) >= 0 and len(calls) == 3
    assert best_of(lambda: calls.append(1), repeats=2, warmup=True) >= 0 and len(calls) == 6
    assert per_point(lambda X: calls.append(len(X)), np.zeros((4, 2)), repeats=1) >= 0 and calls[-1] == 4
    with pytest.raises(ValueError, match="repeats"):
        best_of(lambda: None, repeats=0)


def test_timer_counts_cpu_seconds_apart_from_wall():
    """A sleeping stage takes wall time but almost no CPU; a busy one takes CPU. CPU seconds are the
    whole process's (BLAS threads included), so the stages are timed in a fresh interpreter: in the
    test session, threads other tests leave running (0.04 CPU-s during a 0.05 s sleep, seen in CI)
    would be counted too."""
    code = (
        "import json, time\n"
        "from krepes_lib.timing import Timer\n"
        "T = Timer()\n"
        "with T('sleep'):\n    time.sleep(0.05)\n"
        "with T('busy'):\n    t0 = time.process_time()\n"
        "    while time.process_time() - t0 < 0.05:\n        pass\n"
        "print(json.dumps([T.get('sleep'), T.cpu_seconds, T.cpu_total]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    wall_sleep, cpu, cpu_total = json.loads(out.stdout.strip().splitlines()[-1])
    assert wall_sleep >= 0.045 and cpu["sleep"] < 0.03
    assert cpu["busy"] >= 0.045
    assert cpu_total == pytest.approx(cpu["sleep"] + cpu["busy"])
    T = Timer()
    with T("busy"):
        pass
    T.reset()
    assert T.cpu_seconds == {} and T.cpu_total == 0
