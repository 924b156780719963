"""Per-agent limits (#28) as data: resolution, narrowing, the API's cap, the bwrap argv, the
cgroup v2 set-up against a fake delegated tree, and how the limits read in `eve logs`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eve.cli.output import describe_event
from eve.errors import ConfigError, ValidationError
from eve.executor import limits
from eve.executor.cgroups import LEAF, Limiter, mounts, own_cgroups
from eve.executor.limits import AgentLimits
from eve.executor.sandbox import Policy, command
from eve.executor.watch import Hit


def test_defaults_env_and_flags():
    assert limits.from_env({}) == AgentLimits(4096, 512, 1024, 10240, 120, 20, 0)
    got = limits.from_env({"EVE_AGENT_MEMORY_MB": "512", "EVE_AGENT_IDLE_MINUTES": "0.05", "EVE_AGENT_PIDS": ""},
                          memory_mb=256)
    assert got.memory_mb == 256 and got.idle_minutes == 0.05 and got.pids == 512  # flag over env over default


@pytest.mark.parametrize(("env", "text"), [
    ({"EVE_AGENT_MEMORY_MB": "lots"}, "EVE_AGENT_MEMORY_MB must be a number"),
    ({"EVE_AGENT_PIDS": "-1"}, r"0 \(no limit\) or more"),
    ({"EVE_AGENT_DISK_MB": "1.5"}, "whole number"),
    ({"EVE_AGENT_MAX_MINUTES": "inf"}, r"0 \(no limit\) or more"),
])
def test_bad_values_are_named(env, text):
    with pytest.raises(ConfigError, match=text):
        limits.from_env(env)


def test_a_worker_type_narrows_never_widens():
    base = AgentLimits(memory_mb=4096, pids=512, disk_mb=0, max_minutes=120)
    got = limits.narrow(base, {"memory_mb": 1024, "pids": 10_000, "disk_mb": 100, "max_minutes": 0})
    assert got.memory_mb == 1024  # lower: taken
    assert got.pids == 512  # higher: the worker's stays
    assert got.disk_mb == 100  # the worker had none: the type's holds
    assert got.max_minutes == 120  # 0 ("none") does not lift the worker's
    assert limits.narrow(base, None) is base
    with pytest.raises(ConfigError, match="unknown limit 'ram'"):
        limits.narrow(base, {"ram": 1})
    with pytest.raises(ConfigError, match="must be an object"):
        limits.narrow(base, [1])  # type: ignore[arg-type]


def test_wall_time_cap_and_who_decides():
    lim = AgentLimits(max_minutes=2)
    assert lim.timeout_s(60_000) == (60, False)  # the request's own timeout is shorter
    assert lim.timeout_s(30 * 60_000) == (120, True)  # the cap ends it: time_limit, not timeout
    assert AgentLimits(max_minutes=0).timeout_s(30 * 60_000) == (1800, False)


def test_the_api_cap_names_itself():
    assert limits.api_cap_ms(120) == 7_200_000
    assert limits.api_cap_ms(120, {"limits": {"max_minutes": 10}}) == 600_000
    assert limits.api_cap_ms(5, {"limits": {"max_minutes": 10}}) == 300_000  # never widened
    assert limits.api_cap_ms(0) is None
    assert limits.api_cap_ms(120, {"limits": {"max_minutes": "bad"}}) == 7_200_000  # the operator's to fix
    limits.check_timeout(7_200_000, 120, {})
    limits.check_timeout(None, 120, {})
    with pytest.raises(ValidationError, match=r"over the cap of 7200000 ms \(120 min\)") as exc:
        limits.check_timeout(7_200_001, 120, {})
    assert exc.value.code == "timeout_over_cap" and exc.value.http_status == 400


def test_bwrap_sizes_every_private_tmpfs(tmp_path):
    policy = Policy(workspace=tmp_path, inside_workspace="/workspace/x", home="/root", home_source=tmp_path,
                    tmp_bytes=64 << 20)
    argv = command("bwrap", policy, ["true"])
    for mount in ("/tmp", "/var/tmp", "/run"):
        i = argv.index(mount)
        assert argv[i - 1] == "--tmpfs"
        before = argv[max(0, i - 5):i]
        assert "--size" in before and before[before.index("--size") + 1] == str(64 << 20), (mount, before)
    unsized = command("bwrap", Policy(workspace=tmp_path, inside_workspace="/workspace/x", home="/root",
                                      home_source=tmp_path), ["true"])
    assert "--size" not in unsized


def test_mountinfo_and_proc_cgroup_parsing():
    info = mounts("35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
                  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
                  "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    assert [(m.kind, m.point, sorted(m.controllers)) for m in info] == [
        ("cgroup", "/sys/fs/cgroup/memory", ["memory", "rw"]), ("cgroup2", "/sys/fs/cgroup/unified", [])]
    own = own_cgroups("4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/user.slice\n")
    assert own == {"memory": "/process_api/abc", "cpu": "/", "cpuacct": "/", "": "/user.slice"}


UNIT = "system.slice/eve-worker@general.service"


def fake_v2(tmp_path: Path, *, controllers: str = "cpu memory pids", procs: str = "101\n102\n",
            delegated: bool = True) -> Path:
    """A cgroup v2 directory as systemd leaves it for a Delegate=yes unit (the xattr it sets)."""
    proc = tmp_path / "proc"
    proc.mkdir()
    root = tmp_path / "cg" / UNIT
    root.mkdir(parents=True)
    if delegated:
        try:
            os.setxattr(root, "user.delegate", b"1")
        except OSError as exc:
            pytest.skip(f"this filesystem takes no user xattrs: {exc}")
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text(procs)
    (proc / "mountinfo").write_text(f"30 1 0:26 / {tmp_path / 'cg'} rw - cgroup2 cgroup2 rw\n")
    (proc / "cgroup").write_text("0::/system.slice/eve-worker@general.service\n")
    return proc


def test_cgroup_v2_delegated_subtree_setup_and_agent_group(tmp_path):
    proc = fake_v2(tmp_path)
    lim = Limiter.create(AgentLimits(memory_mb=512, pids=100, cpus=1.5), worker_id="general-1",
                         proc_root=str(proc), requested="cgroup2")
    root = tmp_path / "cg" / "system.slice" / "eve-worker@general.service"
    assert lim.mechanism == "cgroup2" and lim.v2_root == root
    # the worker's processes moved to a leaf before the controllers were enabled for the children
    assert (root / LEAF / "cgroup.procs").read_text() == "102"  # (a fake file keeps the last write)
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    group = lim.group("req-1")
    d = root / "agent.general-1.req-1"
    assert group.dirs == [d]
    assert (d / "memory.max").read_text() == str(512 << 20)
    assert (d / "memory.swap.max").read_text() == "0" and (d / "memory.oom.group").read_text() == "1"
    assert (d / "pids.max").read_text() == "100" and (d / "cpu.max").read_text() == "150000 100000"
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_kills() == 1
    assert lim.holds()["memory"].startswith("cgroup2") and lim.holds()["pids"] == "cgroup2 (whole tree)"


def test_cgroup_v2_not_delegated_is_left_alone(tmp_path):
    proc = fake_v2(tmp_path, delegated=False)
    if os.geteuid() != 0:
        pytest.skip("a non-root worker owning the directory counts as delegated")
    with pytest.raises(ConfigError, match="not delegated to this worker"):
        Limiter.create(AgentLimits(), worker_id="w", proc_root=str(proc), requested="cgroup2")
    root = tmp_path / "cg" / UNIT
    assert not (root / LEAF).exists() and (root / "cgroup.subtree_control").read_text() == ""  # nothing moved


@pytest.mark.parametrize(("controllers", "why"), [
    ("cpu", "memory and pids controllers are not delegated"),
    ("memory", "the pids controller is not delegated"),
])
def test_cgroup_v2_without_delegation_says_why(tmp_path, controllers, why):
    proc = fake_v2(tmp_path, controllers=controllers)
    with pytest.raises(ConfigError, match=why):
        Limiter.create(AgentLimits(), worker_id="w", proc_root=str(proc), requested="cgroup2")
    auto = Limiter.create(AgentLimits(), worker_id="w", proc_root=str(proc))
    assert auto.mechanism == "rlimit" and why in auto.reason  # no v1 mounted in the fake either


def test_the_fallback_shows_what_it_cannot_hold(tmp_path):
    lim = Limiter(AgentLimits(), "rlimit", "no cgroups", sandbox="none")
    holds = lim.holds()
    assert holds["memory"].startswith("rlimit RLIMIT_DATA (per process")
    assert holds["tmp"].startswith("not enforced") and holds["pids"].startswith("not enforced")
    assert Limiter(AgentLimits(), "rlimit", sandbox="uid").holds()["tmp"].startswith("TMPDIR in the turn directory")
    assert "NOT ENFORCED: " in lim.summary() and "tmp" in lim.summary()
    off = Limiter(AgentLimits(memory_mb=0, disk_mb=0), "cgroup1", sandbox="bwrap", bases={"pids": tmp_path})
    assert off.holds()["memory"] == "off" and off.holds()["disk"] == "off"
    text, weak = limits.short_text(lim.describe())
    assert weak and text.startswith("rlimit -")
    assert limits.short_text(None) == ("none", True)
    assert not limits.whole_tree(lim.describe()) and limits.whole_tree(off.describe())


def test_a_hit_is_final_with_the_limits_error_code():
    for limit, code, status in (("memory", "memory_limit", "failed"), ("disk", "disk_limit", "failed"),
                                ("time", "time_limit", "timeout"), ("idle", "idle_timeout", "timeout")):
        out = Hit(limit, 5, "stopped").outcome(10)
        assert (out.error_code, out.status, out.retryable) == (code, status, False)
    event = Hit("memory", 512, "m", {"oom_kills": 1}).event("cgroup1")
    assert event == {"limit": "memory", "value": 512, "unit": "MiB", "error_code": "memory_limit",
                     "mechanism": "cgroup1", "message": "m", "oom_kills": 1}
    assert describe_event("limit_exceeded", event) == \
        "Limit exceeded: memory (512 MiB, cgroup1); agent stopped: memory_limit [oom kills 1]"
    assert describe_event("resources", {"memory_peak_mb": 300, "pids_peak": 40}) == \
        "Resources used: memory peak 300 MiB, processes peak 40"


def test_worker_flags_and_eve_up_flags(monkeypatch):
    from eve.cli.up import agent_limit_env
    from eve.daemons.worker.main import parse

    monkeypatch.setenv("EVE_AGENT_PIDS", "100")
    cfg = parse(["--database-url", "postgresql://x/y", "--agent-memory-mb", "512", "--agent-idle-minutes", "0.5",
                 "--agent-limits", "rlimit"])
    assert cfg.agent_limits == AgentLimits(memory_mb=512, pids=100, idle_minutes=0.5)
    assert cfg.agent_limits_mechanism == "rlimit"
    with pytest.raises(SystemExit):  # argparse: exit 2 with the message, no traceback
        parse(["--database-url", "postgresql://x/y", "--agent-disk-mb", "ten"])
    # eve up hands its flags to the workers and the API as EVE_AGENT_*, checked before anything starts
    assert agent_limit_env(memory_mb=512, pids=None, max_minutes=0.5) == {"EVE_AGENT_MEMORY_MB": "512",
                                                                          "EVE_AGENT_MAX_MINUTES": "0.5"}
    with pytest.raises(ConfigError, match="--agent-memory-mb"):
        agent_limit_env(memory_mb=-1)
