"""The per-agent cgroup with real processes: the kernel, not a mock, holds the limits.

A child joins its group in the preexec step (as the executor's spawn does); a Python
child allocating past the memory limit is OOM-killed and the group reports it; a fork
loop stops at pids.max; a neighbour in another group, allocating just as much memory,
is untouched; the group is gone (and so is everything in it) after `remove()`.
Skipped, with the reason, where this process cannot make cgroups (not root, no
delegated subtree): the rlimit fallback is tested regardless.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from eve.executor.cgroups import Limiter
from eve.executor.limits import AgentLimits

ALLOC = "import sys; b = b'x' * ({mb} << 20); print('allocated', len(b) >> 20, flush=True)"


@pytest.fixture(scope="module")
def limiter() -> Iterator[Limiter]:
    lim = Limiter.create(AgentLimits(memory_mb=64, pids=20, disk_mb=50), worker_id=f"test-{uuid.uuid4().hex[:8]}")
    if lim.mechanism == "rlimit":
        pytest.skip(f"cgroups are not writable here: {lim.reason}")
    yield lim
    lim.close()
    assert all(not base.exists() for base in lim.bases.values())


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def run_in(group, code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], preexec_fn=group.preexec(), capture_output=True, text=True,
                          timeout=timeout)


def test_a_child_past_the_memory_limit_is_oom_killed_and_reported(limiter):
    group = limiter.group(f"mem-{uuid.uuid4().hex[:8]}")
    try:
        assert group.oom_kills() == 0
        res = run_in(group, ALLOC.format(mb=512))
        assert res.returncode == -9, (res.returncode, res.stdout, res.stderr)  # SIGKILL from the OOM killer
        assert "allocated" not in res.stdout
        assert group.oom_kills() >= 1
        assert group.usage()["memory_peak_mb"] <= 64
    finally:
        assert group.remove()
    assert all(not d.exists() for d in group.dirs)


def test_a_neighbour_in_its_own_group_is_unaffected(limiter):
    hog = limiter.group(f"hog-{uuid.uuid4().hex[:8]}")
    calm = Limiter(AgentLimits(memory_mb=512, pids=50), limiter.mechanism, bases=limiter.bases,
                   v2_root=limiter.v2_root, worker=limiter.worker).group(f"calm-{uuid.uuid4().hex[:8]}")
    try:
        hog_proc = subprocess.Popen([sys.executable, "-c", ALLOC.format(mb=512)], preexec_fn=hog.preexec(),
                                    stdout=subprocess.PIPE, text=True)
        res = run_in(calm, ALLOC.format(mb=200))  # more than the hog's limit, under its own
        assert hog_proc.wait(60) == -9
        assert res.returncode == 0 and "allocated 200" in res.stdout, res
        assert calm.oom_kills() == 0 and hog.oom_kills() >= 1
    finally:
        assert hog.remove() and calm.remove()


def test_a_fork_loop_stops_at_pids_max(limiter):
    group = limiter.group(f"pids-{uuid.uuid4().hex[:8]}")
    code = ("import subprocess\nps = []\nfor i in range(300):\n    try:\n"
            "        ps.append(subprocess.Popen(['sleep', '30']))\n    except OSError:\n        break\n"
            "print('started', len(ps), flush=True)\nfor p in ps: p.kill()\n")
    try:
        res = run_in(group, code)
        assert res.returncode == 0, res.stderr
        started = int(res.stdout.split()[1])
        assert 0 < started < 20  # the interpreter itself is one of the 20
        assert group.usage().get("pids_peak", 0) <= 20
    finally:
        assert group.remove()


def test_remove_kills_what_the_agent_left_running(limiter):
    group = limiter.group(f"left-{uuid.uuid4().hex[:8]}")
    # a tool that left the process group (setsid) and outlives its parent
    subprocess.run(["setsid", "-f", "sleep", "300"], preexec_fn=group.preexec(), check=True)
    left = group.pids()
    assert left, "the detached sleeper is in the group"
    assert group.remove()
    assert not any(alive(pid) for pid in left)


def test_the_fallback_child_gets_its_rlimits_and_the_parent_keeps_its_own():
    lim = Limiter(AgentLimits(disk_mb=5, memory_mb=300), "rlimit")
    group = lim.group("any")
    code = ("import resource as r; print(r.getrlimit(r.RLIMIT_FSIZE)[0], r.getrlimit(r.RLIMIT_CORE)[0], "
            "r.getrlimit(r.RLIMIT_DATA)[0])")
    res = run_in(group, code)
    # no file-size limit (a sparse file costs no disk), no core dumps, memory per process
    assert res.stdout.split() == [str(resource.RLIM_INFINITY), "0", str(300 << 20)]
    refused = run_in(group, "try:\n    b = b'x' * (400 << 20)\nexcept MemoryError:\n    print('refused')")
    assert "refused" in refused.stdout, refused
    assert resource.getrlimit(resource.RLIMIT_DATA)[0] == resource.RLIM_INFINITY  # the parent untouched


def test_start_up_sweeps_what_killed_workers_left_but_not_a_running_agent(limiter):
    dead = Limiter(limiter.limits, limiter.mechanism, bases={k: v.parent / f"dead-{uuid.uuid4().hex[:6]}"
                                                             for k, v in limiter.bases.items()},
                   v2_root=limiter.v2_root, worker="dead")
    for base in dead.bases.values():
        base.mkdir()
    left = dead.group("left-behind")  # a worker killed with -9: an empty group and its own dir
    busy = limiter.group(f"busy-{uuid.uuid4().hex[:8]}")
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=busy.preexec())
    try:
        other = Limiter.create(AgentLimits(), worker_id=f"test-{uuid.uuid4().hex[:8]}")  # sweeps at start
        assert all(not d.exists() for d in left.dirs) and all(not b.exists() for b in dead.bases.values())
        assert all(d.exists() for d in busy.dirs) and sleeper.poll() is None  # a running agent is untouched
        other.close()
    finally:
        sleeper.kill()
        sleeper.wait()
        assert busy.remove()
