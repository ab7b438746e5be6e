"""Process-executor workers die with their driver (SIGKILL and SIGTERM), the resource tracker
too, and a pool that restarts after a worker died says so in one line.

The driver is a small script (no TensorFlow): it maps a function that marks its start and
sleeps, so that the workers are busy when the driver is killed.
"""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from dmoe.cosim.executors import FAULT_EXIT_CODE, ProcessExecutor

DRIVER = textwrap.dedent("""
    import os, sys, time
    from dmoe.cosim.executors import ProcessExecutor

    def work(marker):
        open(marker, "w").close()
        time.sleep(600)

    if __name__ == "__main__":
        folder = sys.argv[1]
        markers = [os.path.join(folder, f"started-{i}") for i in range(2)]
        for item in ProcessExecutor(workers=2).map(work, markers):
            pass
""")


def _children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _alive(pid):
    """True unless the process is gone or a zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_workers_and_resource_tracker_die_with_their_driver(tmp_path, signum):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    children = []
    try:
        assert _wait_for(lambda: all((tmp_path / f"started-{i}").exists() for i in range(2)),
                         120), "the workers never started their points"
        children = _children(driver.pid)  # two workers and the resource tracker
        assert len(children) == 3
        driver.send_signal(signum)
        driver.wait(timeout=60)
        assert _wait_for(lambda: not any(_alive(pid) for pid in children), 30), \
            f"still alive after their driver died: {[p for p in children if _alive(p)]}"
    finally:
        for pid in [driver.pid, *children]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        driver.wait(timeout=30)


def test_a_restarted_pool_is_reported_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DMOE_FAULT_KILL_POINT", "4.0")
    monkeypatch.setenv("DMOE_FAULT_ONCE_DIR", str(tmp_path))
    lines = []
    got = dict(ProcessExecutor(workers=1, log=lines.append).map(math.sqrt, [1.0, 4.0, 9.0]))
    assert got == {1.0: 1.0, 4.0: 2.0, 9.0: 3.0}
    (line,) = lines
    assert str(FAULT_EXIT_CODE) in line and "new pool" in line and "point(s)" in line
