"""How a worker holds its agents' limits: a cgroup per agent (v2 or v1), or rlimits.

Each agent gets its own cgroup, made before the spawn; the child joins it in its
preexec step, before it execs bwrap (or the variant), so every descendant — tools,
their forks, whatever leaves the process group — is in it and counted. The group goes
after the turn, with anything still running in it killed first. What the kernel holds
there holds for the whole tree, including the agent's tmpfs `/tmp` (shared memory is
charged to the memory cgroup of the process that writes it).

* ``cgroup2`` — a delegated subtree (systemd ``Delegate=yes``; a container's own
  cgroup): the worker's own cgroup is the root. cgroup v2 keeps processes out of inner
  nodes, so what runs there moves to a leaf ``eve-worker`` first; agents are siblings
  ``agent.<worker>.<request>`` with ``memory.max`` (swap 0, ``memory.oom.group``: an OOM
  takes the whole agent), ``pids.max`` and ``cpu.max``; an OOM kill shows in
  ``memory.events``.
* ``cgroup1`` — the ``memory`` and ``pids`` hierarchies (``cpu`` when mounted), a group
  ``eve/<worker>/<request>`` under the worker's own cgroup in each;
  ``memory.limit_in_bytes``, ``pids.max``, ``cpu.cfs_quota_us``; an OOM kill shows as
  ``oom_kill`` in ``memory.oom_control``.
* ``rlimit`` — neither is writable: per-process limits only (``RLIMIT_DATA`` for
  memory; ``RLIMIT_NPROC`` where the agent has a uid of its own), said so wherever the
  limits are shown.

In every mode the child also gets ``RLIMIT_CORE`` 0 (no core dump of a large process in
the workspace). Disk, idle and wall time are watched by eve.executor.watch. (No
``RLIMIT_FSIZE``: it limits a file's size, not its blocks, and a sparse file costs no disk.)
"""

from __future__ import annotations

import errno
import os
import re
import resource
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eve.executor.limits import AgentLimits, fmt

MECHANISMS = ("cgroup2", "cgroup1", "rlimit")
LEAF = "eve-worker"  # cgroup v2: where the worker's own processes live, beside its agents
_NAME = re.compile(r"[^A-Za-z0-9_.-]")
CPU_PERIOD_US = 100_000
PRIME_FOR_S, PRIME_EVERY_S = 0.15, 0.004  # Limiter.prime: longer than a claim → spawn, shorter than a grace period


def _safe(name: str) -> str:
    return _NAME.sub("_", name)[:100] or "_"


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read_int(path: Path, key: str | None = None) -> int | None:
    """A single-number file, or the `key N` line of a flat-keyed one; None when absent."""
    try:
        text = path.read_text()
    except OSError:
        return None
    if key is None:
        text = text.strip()
        return int(text) if text.isdigit() else None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def _pids(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


# -- where the cgroups are ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    kind: str  # cgroup | cgroup2
    root: str  # the mount's root inside the hierarchy
    point: str  # where it is mounted
    controllers: frozenset[str]


def mounts(mountinfo: str) -> list[Mount]:
    """cgroup mounts from /proc/self/mountinfo text."""
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        a, b = left.split(), right.split()
        if len(a) < 5 or len(b) < 3 or b[0] not in ("cgroup", "cgroup2"):
            continue
        opts = set(b[2].split(","))
        out.append(Mount(b[0], a[3], a[4].replace("\\040", " "), frozenset(opts) if b[0] == "cgroup" else frozenset()))
    return out


def own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """{controller or '' (v2): path} from /proc/self/cgroup text."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for ctl in parts[1].split(",") if parts[1] else [""]:
            out[ctl] = parts[2]
    return out


def _host_dir(mount: Mount, path: str) -> Path | None:
    """The directory of cgroup `path` (as /proc/self/cgroup names it) under `mount`."""
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        return None
    return Path(mount.point + path[len(root):])


# -- one agent's group ----------------------------------------------------------------------


@dataclass
class AgentGroup:
    """One agent's cgroup directories (one per v1 hierarchy, one in v2; none with rlimits)."""

    mechanism: str
    dirs: list[Path]
    memory_dir: Path | None
    pids_dir: Path | None
    limits: AgentLimits
    uid: int | None = None  # the agent's own uid, when it has one (RLIMIT_NPROC counts per uid)

    def preexec(self, then: Callable[[], None] | None = None) -> Callable[[], None]:
        """What the child runs before exec: join the group, set the rlimits, then `then`
        (the sandbox's own step: drop to the slot uid). Minimal work: this is claim → spawn."""
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        rl: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
        if self.mechanism == "rlimit":
            if self.limits.memory_mb:
                rl.append((resource.RLIMIT_DATA, self.limits.memory_bytes))
            if self.limits.pids and self.uid is not None:
                rl.append((resource.RLIMIT_NPROC, self.limits.pids))

        def run() -> None:
            me = str(os.getpid()).encode()
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, me)
                finally:
                    os.close(fd)
            for which, value in rl:
                resource.setrlimit(which, (value, value))
            if then is not None:
                then()

        return run

    def oom_kills(self) -> int:
        """How many processes of this agent the kernel killed for memory (0 without a memory cgroup)."""
        if self.memory_dir is None:
            return 0
        if self.mechanism == "cgroup2":
            return _read_int(self.memory_dir / "memory.events", "oom_kill") or 0
        return _read_int(self.memory_dir / "memory.oom_control", "oom_kill") or 0

    def usage(self) -> dict[str, int]:
        """Peak memory (MiB) and processes the agent reached, where the kernel tells."""
        out: dict[str, int] = {}
        if self.memory_dir is not None:
            name = "memory.peak" if self.mechanism == "cgroup2" else "memory.max_usage_in_bytes"
            peak = _read_int(self.memory_dir / name)
            if peak is not None:
                out["memory_peak_mb"] = -(-peak // (1024 * 1024))
        if self.pids_dir is not None:
            peak = _read_int(self.pids_dir / "pids.peak")
            if peak is not None:
                out["pids_peak"] = peak
        return out

    def pids(self) -> list[int]:
        seen: dict[int, None] = {}
        for d in self.dirs:
            seen.update(dict.fromkeys(_pids(d)))
        return list(seen)

    def kill(self) -> int:
        """SIGKILL everything in the group (cgroup.kill where the kernel has it); how many were signalled."""
        killed = 0
        for d in self.dirs:
            if self.mechanism == "cgroup2" and (d / "cgroup.kill").exists():
                try:
                    _write(d / "cgroup.kill", "1")
                except OSError:
                    pass
        for _ in range(50):  # a fork racing the kill lands in the group too: until it is empty
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.002)
        return killed

    def remove(self, timeout: float = 2.0) -> bool:
        """Kill what is left, then remove the directories; False when one stays (still busy)."""
        if not self.dirs:
            return True
        self.kill()
        deadline = time.monotonic() + timeout
        ok = True
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        ok = False
                        break
                    self.kill()
                    time.sleep(0.01)
        return ok


# -- a worker's means ------------------------------------------------------------------------


@dataclass
class Limiter:
    """The limits of a worker's agents and the mechanism that holds them (chosen once at start)."""

    limits: AgentLimits
    mechanism: str  # cgroup2 | cgroup1 | rlimit
    reason: str = ""  # why this mechanism (and why not a better one)
    sandbox: str = "none"  # the worker's sandbox mode: decides what holds /tmp
    worker: str = "worker"
    bases: dict[str, Path] = field(default_factory=dict)  # controller → parent dir of this worker's agent groups
    v2_root: Path | None = None
    own_procs: Path | None = None  # the worker's own cgroup.procs (prime())

    # -- choosing -------------------------------------------------------------------------

    @classmethod
    def create(cls, limits: AgentLimits, *, worker_id: str, sandbox: str = "none", requested: str = "auto",
               proc_root: str = "/proc/self", dry_run: bool = False) -> Limiter:
        """cgroup2 (a delegated subtree), else cgroup1 (memory + pids writable), else rlimits.

        `requested` forces one (tests, or an operator who wants to know it holds): a forced
        cgroup mechanism that is not available raises ConfigError with the reason. `dry_run`
        (eve doctor) only looks: nothing is made, moved or enabled.
        """
        from eve.errors import ConfigError

        if requested not in ("auto", *MECHANISMS):
            raise ConfigError(f"--agent-limits must be one of auto, {', '.join(MECHANISMS)}, got {requested!r}")
        try:
            info = mounts(Path(proc_root, "mountinfo").read_text())
            own = own_cgroups(Path(proc_root, "cgroup").read_text())
        except OSError as exc:
            info, own = [], {}
            why_none = f"cannot read cgroups: {exc}"
        else:
            why_none = ""
        wid = _safe(worker_id)
        why: list[str] = [why_none] if why_none else []

        def v2() -> Limiter | str:
            got = _setup_v2(info, own, dry_run=dry_run)
            if isinstance(got, str):
                return got
            return cls(limits, "cgroup2", f"cgroup v2, delegated subtree {got}", sandbox, wid, v2_root=got,
                       own_procs=got / LEAF / "cgroup.procs")

        def v1() -> Limiter | str:
            got = _setup_v1(info, own, wid, dry_run=dry_run)
            if isinstance(got, str):
                return got
            return cls(limits, "cgroup1", f"cgroup v1: {', '.join(got)}", sandbox, wid, bases=got,
                       own_procs=got["memory"].parent.parent / "cgroup.procs")

        for name, setup in (("cgroup2", v2), ("cgroup1", v1)):
            if requested not in ("auto", name):
                continue
            found = setup()
            if isinstance(found, Limiter):
                if not dry_run:
                    found.sweep()
                return found
            why.append(f"{name.replace('cgroup', 'cgroup v')}: {found}")
            if requested == name:
                raise ConfigError(f"--agent-limits {name}: {found}")
        return cls(limits, "rlimit", "per-process rlimits only (" + "; ".join(why) + ")", sandbox, wid)

    def prime(self, for_s: float = PRIME_FOR_S, every_s: float = PRIME_EVERY_S) -> None:
        """Keep the kernel's cgroup migration lock warm until the spawn (run in a thread at claim).

        Moving a process between cgroups takes a global lock whose first taker after a
        pause waits for an RCU grace period (10-20 ms measured here); a mover within about
        one grace period of the previous one does not wait. No-op moves of the worker into
        its own cgroup from the claim on, every few ms for a bounded time, pay that wait
        while the claim's database work and the workspace run, so the child's move into
        its group (in preexec, while the event loop waits for the exec) is cheap.
        tests/bench/bench_worker.py measures claim → spawn with limits on and off."""
        if self.own_procs is None:
            return
        me = str(os.getpid())
        deadline = time.monotonic() + for_s
        while time.monotonic() < deadline:
            try:
                _write(self.own_procs, me)
            except OSError:
                return
            time.sleep(every_s)

    # -- per agent -------------------------------------------------------------------------

    def group(self, name: str, *, uid: int | None = None, limits: AgentLimits | None = None) -> AgentGroup:
        """Make the agent's group (before its spawn) with `limits` (default: the worker's);
        OSError when the kernel refuses."""
        lim = limits or self.limits
        name = _safe(name)
        if self.mechanism == "cgroup2":
            assert self.v2_root is not None
            d = self.v2_root / f"agent.{self.worker}.{name}"
            d.mkdir(exist_ok=True)
            try:
                if lim.memory_mb:
                    _write(d / "memory.max", str(lim.memory_bytes))
                    _optional(d / "memory.swap.max", "0")
                    _optional(d / "memory.oom.group", "1")
                if lim.pids:
                    _write(d / "pids.max", str(lim.pids))
                if lim.cpus:
                    _optional(d / "cpu.max", f"{int(lim.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
            except OSError:
                _rmdir(d)
                raise
            return AgentGroup("cgroup2", [d], d, d, lim, uid)
        if self.mechanism == "cgroup1":
            made: list[Path] = []
            try:
                for ctl, base in self.bases.items():
                    d = base / name
                    base.mkdir(exist_ok=True)  # another worker's start-up may have swept it while idle
                    d.mkdir(exist_ok=True)
                    made.append(d)
                    if ctl == "memory" and lim.memory_mb:
                        _write(d / "memory.limit_in_bytes", str(lim.memory_bytes))
                        _optional(d / "memory.memsw.limit_in_bytes", str(lim.memory_bytes))  # no swap past it
                    elif ctl == "pids" and lim.pids:
                        _write(d / "pids.max", str(lim.pids))
                    elif ctl == "cpu" and lim.cpus:
                        _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
                        _write(d / "cpu.cfs_quota_us", str(int(lim.cpus * CPU_PERIOD_US)))
            except OSError:
                for d in reversed(made):
                    _rmdir(d)
                raise
            mem = self.bases.get("memory")
            pids = self.bases.get("pids")
            return AgentGroup("cgroup1", made, mem / name if mem else None, pids / name if pids else None, lim, uid)
        return AgentGroup("rlimit", [], None, None, lim, uid)

    def sweep(self) -> int:
        """At start: remove the empty agent groups a killed worker left — its own earlier run's
        and any other dead worker's (`kill -9` runs no clean-up, and `worker-HOST-PID` ids never
        come back); how many went. Only empty groups can be removed at all: a live worker's
        running agent keeps its group, and a live worker's idle directory is made again when
        it next needs it (group())."""
        removed = 0
        if self.mechanism == "cgroup2" and self.v2_root is not None:
            for d in self.v2_root.glob("agent.*"):
                removed += _rmdir(d)
        for base in self.bases.values():
            parent = base.parent  # eve/: every worker's directory on this host
            for d in parent.iterdir() if parent.is_dir() else []:
                if d.is_dir():
                    removed += _rmdir(d)
            base.mkdir(exist_ok=True)
        return removed

    def close(self) -> None:
        """At the worker's stop: its (empty) agent groups and its own `eve/<worker>` dirs go."""
        self.sweep()
        for base in self.bases.values():
            _rmdir(base)

    # -- what holds ----------------------------------------------------------------------------

    def holds(self) -> dict[str, str]:
        """Each limit → how it is held here, or `not enforced: why` (shown, never dropped)."""
        lim, m = self.limits, self.mechanism
        out: dict[str, str] = {}
        cg = m in ("cgroup2", "cgroup1")
        out["memory"] = (f"{m} (whole tree, /tmp included)" if cg
                         else "rlimit RLIMIT_DATA (per process; not the whole tree)")
        if cg and (m == "cgroup2" or "pids" in self.bases):
            out["pids"] = f"{m} (whole tree)"
        elif self.sandbox in ("uid", "bwrap") and os.geteuid() == 0:
            out["pids"] = "rlimit RLIMIT_NPROC (per slot uid)"
        else:
            out["pids"] = "not enforced: no pids cgroup, and agents share the worker's uid"
        if not lim.cpus:
            out["cpus"] = f"equal share ({m})" if cg else "not enforced: no cgroup (no share or cap)"
        elif (m == "cgroup1" and "cpu" in self.bases) or m == "cgroup2":
            out["cpus"] = f"{m} cpu quota"
        else:
            out["cpus"] = "not enforced: no cpu cgroup"
        if self.sandbox == "bwrap":
            out["tmp"] = "bwrap tmpfs --size (and counted as memory)"
        elif self.sandbox == "uid":
            out["tmp"] = "TMPDIR in the turn directory, counted by the disk watcher (the host's /tmp is not sized)"
        else:
            out["tmp"] = f"not enforced: the {self.sandbox} sandbox shares the host's /tmp"
        out["disk"] = "watcher (blocks of the workspace and turn dir, every few s)"
        out["time"] = "watcher (wall clock)"
        out["idle"] = "watcher (no output)"
        for name, key in (("memory", "memory_mb"), ("pids", "pids"), ("tmp", "tmp_mb"), ("disk", "disk_mb"),
                          ("time", "max_minutes"), ("idle", "idle_minutes")):
            if not getattr(lim, key):
                out[name] = "off"
        return out

    def describe(self, *, public: bool = False) -> dict[str, object]:
        """For eve.workers and eve doctor: the values, the mechanism and what holds each, and
        why and where; `public` (the unauthenticated /health): without the why and where,
        which name host paths."""
        out: dict[str, object] = {"mechanism": self.mechanism, **self.limits.as_dict(), "holds": self.holds()}
        if not public:
            out["reason"] = self.reason
            out["groups"] = [str(p) for p in ([self.v2_root] if self.v2_root else self.bases.values())]
        return out

    def summary(self) -> str:
        """The start line's part: `limits (cgroup1): memory 4096 MiB, pids 512, ...; not enforced: tmp`."""
        lim, holds = self.limits, self.holds()
        parts = [f"memory {fmt('memory_mb', lim.memory_mb)}", f"pids {fmt('pids', lim.pids)}",
                 f"tmp {fmt('tmp_mb', lim.tmp_mb)}", f"disk {fmt('disk_mb', lim.disk_mb)}",
                 f"wall {fmt('max_minutes', lim.max_minutes)}", f"idle {fmt('idle_minutes', lim.idle_minutes)}"]
        if lim.cpus:
            parts.append(f"cpus {fmt('cpus', lim.cpus)}")
        weak = [k for k, v in holds.items() if v.startswith("not enforced")]
        tail = f"; NOT ENFORCED: {', '.join(weak)}" if weak else ""
        return f"agent limits ({self.reason}): {', '.join(parts)}{tail}"


def _optional(path: Path, value: str) -> None:
    """A knob an older kernel may not have."""
    try:
        _write(path, value)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT, errno.EACCES, errno.EPERM):
            raise


def _rmdir(d: Path) -> int:
    """Remove an (empty) group and its empty children; 1 when it went."""
    try:
        for child in d.iterdir():
            if child.is_dir():
                _rmdir(child)
        d.rmdir()
        return 1
    except OSError:
        return 0


def _setup_v1(info: list[Mount], own: Mapping[str, str], worker: str, *, dry_run: bool = False) -> dict[str, Path] | str:
    """{controller: `<own cgroup>/eve/<worker>`} for memory and pids (and cpu when it is
    there), made and writable; or why not."""
    bases: dict[str, Path] = {}
    for ctl in ("memory", "pids", "cpu"):
        mount = next((m for m in info if m.kind == "cgroup" and ctl in m.controllers), None)
        if mount is None:
            if ctl == "cpu":
                continue
            return f"no {ctl} hierarchy mounted"
        here = _host_dir(mount, own.get(ctl, "/"))
        if here is None:
            return f"this process's {ctl} cgroup is outside the mounted hierarchy"
        base = here / "eve" / worker
        if dry_run:
            if not os.access(here, os.W_OK):
                if ctl == "cpu":
                    continue
                return f"{ctl}: {here} is not writable (needs root or a delegated hierarchy)"
            bases[ctl] = base
            continue
        try:
            base.mkdir(parents=True, exist_ok=True)
            if not os.access(base / "cgroup.procs", os.W_OK):
                raise PermissionError(f"{base / 'cgroup.procs'} is not writable")
        except OSError as exc:
            if ctl == "cpu":
                continue
            return f"{ctl}: cannot make {base} ({exc.strerror or exc}; needs root or a delegated hierarchy)"
        bases[ctl] = base
    return bases


def _delegated(root: Path, path: str) -> bool:
    """A cgroup v2 subtree this process may reorganise: its own cgroup namespace's root (a
    container), one systemd marked delegated (`Delegate=yes`: the trusted.delegate or
    user.delegate xattr), or one chowned to this (non-root) user by a delegation."""
    if path in ("/", ""):
        return True
    for attr in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(root, attr) == b"1":
                return True
        except OSError:
            continue
    try:
        return os.geteuid() != 0 and os.stat(root).st_uid == os.geteuid()
    except OSError:
        return False


def _setup_v2(info: list[Mount], own: Mapping[str, str], *, dry_run: bool = False) -> Path | str:
    """The delegated root (the worker's own cgroup, or the parent of its `eve-worker` leaf)
    with memory and pids enabled for its children; or why not."""
    mount = next((m for m in info if m.kind == "cgroup2"), None)
    if mount is None or "" not in own:
        return "not mounted"
    here = _host_dir(mount, own[""])
    if here is None:
        return "this process's cgroup is outside the mounted hierarchy"
    root = here.parent if here.name == LEAF else here  # a sibling worker (eve up) moved us already
    if not _delegated(root, own[""]):
        return (f"{root} is not delegated to this worker (systemd: Delegate=yes marks it; without that the "
                "tree is systemd's to manage, and a root worker would reorganise someone else's cgroup)")
    try:
        available = set((root / "cgroup.controllers").read_text().split())
    except OSError as exc:
        return f"cannot read {root / 'cgroup.controllers'}: {exc.strerror or exc}"
    missing = {"memory", "pids"} - available
    if missing:
        return f"the {' and '.join(sorted(missing))} controller{'s are' if len(missing) > 1 else ' is'} not " \
               f"delegated to {root} (systemd: Delegate=yes)"
    if not (os.access(root, os.W_OK) and os.access(root / "cgroup.subtree_control", os.W_OK)
            and os.access(root / "cgroup.procs", os.W_OK)):
        return f"{root} is not writable by this worker (systemd: Delegate=yes; a container: a writable cgroup)"
    enabled = set((root / "cgroup.subtree_control").read_text().split())
    wanted = {"memory", "pids"} | ({"cpu"} & available)
    if wanted - enabled and not dry_run:
        try:
            leaf = root / LEAF
            leaf.mkdir(exist_ok=True)
            for _ in range(3):  # processes in an inner node would forbid enabling controllers
                pids = _pids(root)
                if not pids:
                    break
                for pid in pids:
                    try:
                        _write(leaf / "cgroup.procs", str(pid))
                    except ProcessLookupError:
                        pass
            _write(root / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted - enabled)))
        except OSError as exc:
            return f"cannot enable {', '.join(sorted(wanted))} under {root}: {exc.strerror or exc}"
    return root
