"""Agent network egress: a filtering HTTP proxy per agent, reached through a Unix socket.

DESIGN §9 gives an agent "network to providers and git hosts", nothing more. Sharing the
host's network gave it everything the host reaches: the cloud metadata service
(169.254.169.254 hands out instance credentials), PostgreSQL's port, the workers' health
ports, whatever else listens on the host or its private network.

In bwrap mode the agent now gets its own network namespace (``--unshare-net``): a
loopback and no route anywhere. The one way out is this proxy's Unix socket, bound into
the sandbox at `INSIDE_SOCKET`; a relay inside (`eve.executor.netrelay`) listens on
127.0.0.1:`INSIDE_PORT` and HTTP(S)_PROXY points the agent's tools at it (Claude Code,
git, curl, npm, pip and httpx all honour them). The proxy serves CONNECT (https, any
TLS: the bytes are passed through, never opened) and absolute-form http requests, and
lets one through only to an allowlisted host:port: the provider the variant names, the
eve API the agent was given, git hosts, and what the operator adds. Everything else gets
a 403 whose text says what to add, and an `egress_refused` event in the request's log.
A tool that ignores the proxy variables simply has no network.

One proxy per agent: its allowlist is that agent's, what it refuses lands in that
request's events, and it closes when the agent ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from eve import metrics

INSIDE_SOCKET = "/run/eve-egress.sock"
INSIDE_PORT = 3128
NETWORK_MODES = ("filtered", "open")
# Hosts every agent may reach on 443/80: the providers cc-mirror variants point at, and the
# git hosts (with the hosts their clones, archives and release assets come from).
DEFAULT_ALLOW = (
    "api.anthropic.com", "openrouter.ai", "api.z.ai", "open.bigmodel.cn", "api.minimax.io", "api.minimaxi.com",
    "api.deepseek.com",
    "github.com", "api.github.com", "codeload.github.com", "*.githubusercontent.com", "gitlab.com",
    "bitbucket.org", "api.bitbucket.org",
)
_BASE_URL = re.compile(r"""\bANTHROPIC_BASE_URL=["']?([^\s"';]+)""")
MAX_HEAD = 64 * 1024  # a request head longer than this is dropped
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 15.0
MAX_REFUSAL_EVENTS = 20  # per agent: a loop of refused connects must not flood the event log
MAX_OPEN = 64  # connections one agent may hold open at once: the worker's file descriptors are shared
_HOP_HEADERS = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
                          b"proxy-authenticate", b"te", b"trailer", b"upgrade"})


@dataclass(frozen=True)
class Rule:
    """One allowlist entry: a host (or `*.domain` for its subdomains) and the ports it opens."""

    host: str
    ports: frozenset[int]
    subdomains: bool = False

    def allows(self, host: str, port: int) -> bool:
        if port not in self.ports:
            return False
        if self.subdomains:
            return host.endswith("." + self.host)
        return host == self.host


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def parse_rule(entry: str) -> Rule:
    """`host`, `host:port`, `*.domain[:port]`, `[v6]:port`; no port means 443 and 80.

    Raises ValueError with a readable message for anything else.
    """
    text = entry.strip()
    if not text or any(c in text for c in "/ @?#"):
        raise ValueError(f"not a host or host:port: {entry!r}")
    host, port = text, None
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", text)
    if m:
        host, port = m.group(1), m.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    elif text.count(":") > 1:  # a bare IPv6 address
        host = text
    if port is not None and not port.isdigit():
        raise ValueError(f"not a port number in {entry!r}")
    ports = frozenset({443, 80}) if port is None else frozenset({int(port)})
    if any(not 0 < p < 65536 for p in ports):
        raise ValueError(f"port out of range in {entry!r}")
    subdomains = host.startswith("*.")
    host = _norm_host(host[2:] if subdomains else host)
    if not host or "*" in host:
        raise ValueError(f"a wildcard may only lead, as in *.example.com: {entry!r}")
    return Rule(host, ports, subdomains)


def parse_rules(text: str) -> list[Rule]:
    """A comma- or whitespace-separated list (EVE_AGENT_NET_ALLOW)."""
    return [parse_rule(e) for e in re.split(r"[,\s]+", text or "") if e]


def base_rules(extra: Iterable[str] = ()) -> list[Rule]:
    """DEFAULT_ALLOW plus the operator's entries (ValueError names a bad one)."""
    return [*(parse_rule(e) for e in DEFAULT_ALLOW), *(r for e in extra for r in parse_rules(e))]


def url_rule(url: str) -> Rule | None:
    """The host:port a base URL (ANTHROPIC_BASE_URL, EVE_API_URL) talks to."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return Rule(_norm_host(parts.hostname), frozenset({port}))


def variant_base_urls(wrapper: str, env: Mapping[str, str], config_dirs: Iterable[str] = ()) -> list[str]:
    """Every ANTHROPIC_BASE_URL the agent's Claude Code may use, from where the operator set it:
    the wrapper script, the `env` of its config dirs' settings.json (where cc-mirror keeps a
    variant's provider), and the worker's environment."""
    urls = []
    try:
        with open(wrapper, "rb") as fh:
            head = fh.read(65536)
        if b"\0" not in head:
            urls = [m.group(1) for m in _BASE_URL.finditer(head.decode("utf-8", errors="replace"))]
    except OSError:
        pass
    for cfg in config_dirs:
        try:
            with open(os.path.join(cfg, "settings.json"), encoding="utf-8") as fh:
                settings = json.load(fh)
        except (OSError, ValueError):
            continue
        url = (settings.get("env") or {}).get("ANTHROPIC_BASE_URL") if isinstance(settings, dict) else None
        if isinstance(url, str):
            urls.append(url)
    if env.get("ANTHROPIC_BASE_URL"):
        urls.append(env["ANTHROPIC_BASE_URL"])
    return urls


def allowlist(*, base: Iterable[Rule], urls: Iterable[str]) -> tuple[Rule, ...]:
    return (*base, *(r for r in (url_rule(u) for u in urls) if r is not None))


def allowed(rules: Iterable[Rule], host: str, port: int) -> bool:
    host = _norm_host(host)
    return any(r.allows(host, port) for r in rules)


def proxy_env(port: int = INSIDE_PORT) -> dict[str, str]:
    """What points an agent's tools at the relay (both spellings: curl reads only lowercase http_proxy)."""
    url = f"http://127.0.0.1:{port}"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
            "NO_PROXY": "", "no_proxy": ""}


# -- the proxy -----------------------------------------------------------------------------------

Refusal = Callable[[dict[str, object]], Awaitable[None]]


class _Refused(Exception):
    def __init__(self, status: int, reason: str, target: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.target = status, reason, target


def _target(method: str, target: str) -> tuple[str, int, bytes | None]:
    """(host, port, origin-form path or None for CONNECT) of a request line's target."""
    if method == "CONNECT":
        m = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", target)
        if not m:
            raise _Refused(400, f"CONNECT needs host:port, got {target[:200]!r}")
        return m.group(1), int(m.group(2)), None
    try:
        parts = urlsplit(target)
        port = parts.port or 80
    except ValueError:
        raise _Refused(400, f"not a URL: {target[:200]!r}") from None
    if parts.scheme != "http" or not parts.hostname:
        raise _Refused(400, "a proxy request needs an absolute http:// URL (https goes through CONNECT)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, path.encode()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:  # ConnectionError included
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def _reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int, text: str) -> None:
    """An error answer, then a clean close: what the client still sends is read and dropped
    for a moment, or closing with unread data would reset the connection before it reads."""
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 503: "Service Unavailable",
              504: "Gateway Timeout"}.get(status, "Error")
    body = (text + "\n").encode()
    writer.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_drop_input(reader), 2.0)


async def _drop_input(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


class EgressProxy:
    """One agent's proxy: `async with EgressProxy(rules, on_refused) as p:` … `p.socket_path`."""

    def __init__(self, rules: Iterable[Rule], on_refused: Refusal | None = None) -> None:
        self.rules = tuple(rules)
        self.on_refused = on_refused
        self.refusals = 0
        self.connections = 0
        self._dir: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.socket_path = ""

    async def __aenter__(self) -> EgressProxy:
        # a short path of our own: a Unix socket path must fit in 108 bytes, workspaces may not
        self._dir = tempfile.mkdtemp(prefix="eve-egress-")
        self.socket_path = os.path.join(self._dir, "s")
        self._server = await asyncio.start_unix_server(self._handle, path=self.socket_path, limit=MAX_HEAD)
        os.chmod(self.socket_path, 0o666)  # the agent's uid connects; the dir (0700) is never shown
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.socket_path)
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        opened: list[asyncio.StreamWriter] = [writer]  # closed on the way out, whatever happens
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
                return
            try:
                if len(self._tasks) > MAX_OPEN:
                    raise _Refused(503, f"eve: an agent may hold {MAX_OPEN} connections open at once")
                await self._serve(head, reader, writer, opened)
            except _Refused as exc:
                if exc.status == 403:
                    await self._refused(exc)
                await _reply(reader, writer, exc.status, exc.reason)
        except asyncio.CancelledError:
            return  # the agent ended (we cancel): nothing for asyncio to report
        except OSError:  # ConnectionError included
            return
        finally:
            self._tasks.discard(task)
            for w in opened:
                with contextlib.suppress(Exception):
                    w.close()

    async def _serve(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     opened: list[asyncio.StreamWriter]) -> None:
        lines = head.split(b"\r\n")
        try:
            method, target, _version = lines[0].decode("latin-1").split(" ")
        except ValueError:
            raise _Refused(400, "malformed request line") from None
        host, port, path = _target(method, target)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not allowed(self.rules, host, port):
            metrics.EGRESS.labels("refused").inc()
            raise _Refused(403, f"eve: agents may not reach {where}; an operator can allow it with "
                                f"EVE_AGENT_NET_ALLOW={where} on the worker", where)
        metrics.EGRESS.labels("allowed").inc()
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(_norm_host(host), port),
                                                          CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise _Refused(504, f"eve: no connection to {where} within {CONNECT_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise _Refused(502, f"eve: cannot connect to {where}: {exc.strerror or exc}") from None
        opened.append(up_writer)
        self.connections += 1
        if path is None:
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:  # one request per connection: the upstream is fixed by this request's host
            kept = [h for h in lines[1:] if h and h.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS]
            up_writer.write(b" ".join([method.encode(), path, b"HTTP/1.1"]) + b"\r\n"
                            + b"".join(h + b"\r\n" for h in kept) + b"Connection: close\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def _refused(self, exc: _Refused) -> None:
        self.refusals += 1
        if self.on_refused is None or self.refusals > MAX_REFUSAL_EVENTS:
            return
        with contextlib.suppress(Exception):  # the event log must not take the proxy down
            await self.on_refused({"target": exc.target, "count": self.refusals,
                                   **({"last": True} if self.refusals == MAX_REFUSAL_EVENTS else {})})
