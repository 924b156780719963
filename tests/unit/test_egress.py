"""The agent's egress proxy: its allowlist, and the proxy itself over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from eve.errors import ConfigError
from eve.executor import egress, sandbox
from eve.executor.egress import EgressProxy, allowed, parse_rule, parse_rules
from eve.executor.sandbox import INSIDE_SOCKET, Policy, SandboxChoice, choose_network, command

# -- the allowlist ---------------------------------------------------------------------------------


def test_a_rule_without_a_port_opens_https_and_http_only():
    rules = [parse_rule("github.com")]
    assert allowed(rules, "github.com", 443) and allowed(rules, "GitHub.com.", 80)
    assert not allowed(rules, "github.com", 22) and not allowed(rules, "api.github.com", 443)
    assert not allowed(rules, "evilgithub.com", 443) and not allowed(rules, "github.com.evil.io", 443)


def test_a_wildcard_opens_subdomains_not_the_domain_or_lookalikes():
    rules = [parse_rule("*.githubusercontent.com")]
    assert allowed(rules, "objects.githubusercontent.com", 443)
    assert not allowed(rules, "githubusercontent.com", 443)
    assert not allowed(rules, "evilgithubusercontent.com", 443)


def test_ip_literals_and_ports_match_exactly():
    rules = parse_rules("127.0.0.1:3000, [::1]:8080 10.0.0.5:5432")
    assert allowed(rules, "127.0.0.1", 3000) and allowed(rules, "[::1]", 8080) and allowed(rules, "10.0.0.5", 5432)
    assert not allowed(rules, "127.0.0.1", 5432) and not allowed(rules, "127.0.0.2", 3000)
    assert not allowed(rules, "localhost", 3000)  # a name is not its address: nothing resolves to pass


@pytest.mark.parametrize("bad", ["http://github.com", "github.com/x", "gith*b.com", "a.com:0", "a.com:70000",
                                 "*", "user@host", "a.com:https", "a.com:"])
def test_a_bad_entry_is_refused_with_its_text(bad):
    with pytest.raises(ValueError) as err:
        parse_rule(bad)
    assert repr(bad.strip()) in str(err.value) or "port" in str(err.value)


def test_the_provider_comes_from_the_wrapper_and_the_workers_environment(tmp_path):
    wrapper = tmp_path / "mclaude"
    wrapper.write_text("#!/bin/sh\nexport ANTHROPIC_BASE_URL='https://api.z.ai/api/anthropic'\nexec claude \"$@\"\n")
    urls = egress.variant_base_urls(str(wrapper), {"ANTHROPIC_BASE_URL": "http://10.1.2.3:8080"})
    rules = egress.allowlist(base=[], urls=[*urls, "http://127.0.0.1:3000"])
    assert allowed(rules, "api.z.ai", 443) and not allowed(rules, "api.z.ai", 80)
    assert allowed(rules, "10.1.2.3", 8080) and allowed(rules, "127.0.0.1", 3000)
    assert not allowed(rules, "api.anthropic.com", 443)  # base=[]: only what was named


def test_a_cc_mirror_variant_names_its_provider_in_its_config_dirs_settings(tmp_path):
    config = tmp_path / ".cc-mirror" / "kimi" / "config"
    config.mkdir(parents=True)
    (config / "settings.json").write_text(json.dumps({"env": {"ANTHROPIC_BASE_URL": "https://api.moonshot.cn/anthropic",
                                                              "ANTHROPIC_AUTH_TOKEN": "x"}}))
    wrapper = tmp_path / "kimi"
    wrapper.write_text(f"#!/bin/sh\nexport CLAUDE_CONFIG_DIR='{config}'\nexec claude \"$@\"\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "settings.json").write_text("{not json")
    dirs = sandbox.variant_config_dirs(str(wrapper), str(tmp_path))
    assert dirs == [str(config)]
    urls = egress.variant_base_urls(str(wrapper), {}, [*dirs, str(broken), str(tmp_path / "missing")])
    assert urls == ["https://api.moonshot.cn/anthropic"]


def test_the_defaults_cover_providers_and_git_hosts():
    rules = egress.base_rules(["registry.npmjs.org"])
    for host in ("api.anthropic.com", "github.com", "codeload.github.com", "objects.githubusercontent.com",
                 "gitlab.com", "registry.npmjs.org"):
        assert allowed(rules, host, 443), host
    for host in ("169.254.169.254", "metadata.google.internal", "127.0.0.1", "localhost"):
        assert not allowed(rules, host, 80), host


# -- the sandbox side --------------------------------------------------------------------------------


def test_a_filtered_agent_gets_its_own_network_and_the_socket(tmp_path):
    base = dict(workspace=tmp_path / "ws", inside_workspace="/workspace/r1", home="/home/eve",
                home_source=tmp_path / "ws" / ".home", system_dirs=("/usr",))
    open_argv = command("/bwrap", Policy(**base), ["x"])
    assert "--unshare-net" not in open_argv
    argv = command("/bwrap", Policy(**base, egress_socket="/tmp/eve-egress-x/s"), ["x"])
    assert "--unshare-net" in argv
    i = argv.index("/tmp/eve-egress-x/s")
    assert argv[i - 1:i + 2] == ["--bind", "/tmp/eve-egress-x/s", INSIDE_SOCKET]
    assert argv.index("--tmpfs", argv.index("/run") - 1) < i  # bound after /run's tmpfs, not under it


def test_auto_filters_under_bwrap_only_and_an_explicit_filter_refuses_without_it():
    uid = SandboxChoice("uid", None, "separate uid per slot")
    net, why = choose_network("auto", uid)
    assert net == "open" and "uid sandbox has no network namespace" in why
    with pytest.raises(ConfigError, match="needs the bwrap sandbox"):
        choose_network("filtered", uid)
    assert choose_network("open", SandboxChoice("bwrap", "/bwrap", ""))[0] == "open"
    with pytest.raises(ConfigError, match="--agent-network must be one of"):
        choose_network("closed", uid)


# -- the proxy, over real sockets ----------------------------------------------------------------------


async def _upstream(reply: bytes) -> tuple[asyncio.AbstractServer, int, list[bytes]]:
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.read(4096))
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], got


async def _ask(proxy: EgressProxy, data: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(proxy.socket_path)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(65536), 10)
    rest = await asyncio.wait_for(reader.read(), 10) if out else b""
    writer.close()
    return out + rest


async def test_connect_to_an_allowed_host_relays_bytes_both_ways():
    server, port, got = await _upstream(b"pong")
    refused: list[dict] = []

    async def note(data: dict) -> None:
        refused.append(data)

    async with server, EgressProxy([parse_rule(f"127.0.0.1:{port}")], note) as proxy:
        assert os.stat(proxy.socket_path).st_mode & 0o777 == 0o666
        reader, writer = await asyncio.open_unix_connection(proxy.socket_path)
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert status.startswith(b"HTTP/1.1 200")
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.read(), 10) == b"pong"
        writer.close()
        path = proxy.socket_path
    assert got == [b"ping"] and refused == [] and proxy.connections == 1
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))  # nothing left behind


async def test_a_plain_http_request_is_forwarded_once_without_proxy_headers():
    server, port, got = await _upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    async with server, EgressProxy([parse_rule(f"127.0.0.1:{port}")]) as proxy:
        out = await _ask(proxy, f"POST http://127.0.0.1:{port}/v1/messages?beta=true HTTP/1.1\r\n"
                                f"Host: 127.0.0.1:{port}\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
                                "Connection: keep-alive\r\nContent-Length: 4\r\n\r\nbody".encode())
    assert out.endswith(b"\r\n\r\nhi")
    sent = got[0]
    assert sent.startswith(b"POST /v1/messages?beta=true HTTP/1.1\r\n") and sent.endswith(b"\r\n\r\nbody")
    assert b"Proxy-Authorization" not in sent and b"keep-alive" not in sent and b"Connection: close" in sent


async def test_a_refused_target_gets_403_an_event_and_no_connection():
    server, port, got = await _upstream(b"never")
    events: list[dict] = []

    async def note(data: dict) -> None:
        events.append(data)

    async with server, EgressProxy([], note) as proxy:
        connect = await _ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        plain = await _ask(proxy, b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n")
        for _ in range(egress.MAX_REFUSAL_EVENTS + 5):
            await _ask(proxy, b"CONNECT [::1]:5432 HTTP/1.1\r\n\r\n")
    assert connect.startswith(b"HTTP/1.1 403") and f"127.0.0.1:{port}".encode() in connect
    assert b"EVE_AGENT_NET_ALLOW" in connect and plain.startswith(b"HTTP/1.1 403")
    assert got == [] and proxy.connections == 0
    assert [e["target"] for e in events[:2]] == [f"127.0.0.1:{port}", "169.254.169.254:80"]
    assert events[2]["target"] == "[::1]:5432"
    assert len(events) == egress.MAX_REFUSAL_EVENTS and events[-1].get("last") is True  # capped, and says so
    assert proxy.refusals == egress.MAX_REFUSAL_EVENTS + 7


@pytest.mark.parametrize("head", [b"garbage\r\n\r\n", b"GET /relative HTTP/1.1\r\n\r\n",
                                  b"CONNECT nohost HTTP/1.1\r\n\r\n", b"GET https://github.com/ HTTP/1.1\r\n\r\n"])
async def test_a_malformed_request_gets_400_not_a_connection(head):
    async with EgressProxy(egress.base_rules()) as proxy:
        out = await _ask(proxy, head)
    assert out.startswith(b"HTTP/1.1 400") and proxy.connections == 0


async def test_an_allowed_host_that_does_not_answer_gets_502():
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with EgressProxy([parse_rule(f"127.0.0.1:{port}")]) as proxy:
        out = await _ask(proxy, f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert out.startswith(b"HTTP/1.1 502") and b"cannot connect" in out


def test_the_relay_file_is_stdlib_only():
    """It runs as `python -I -S` inside the sandbox: nothing of eve (or site-packages) may be imported."""
    text = (Path(egress.__file__).parent / "netrelay.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in text.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"os", "signal", "socket", "subprocess", "sys", "threading"}, imports


def test_the_relay_joins_its_port_to_the_socket_and_exits_with_the_agents_status(tmp_path):
    import socket
    import subprocess
    import sys
    import threading

    from eve.pg import free_port

    path = str(tmp_path / "s")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def upper() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=upper, daemon=True).start()
    port = free_port()
    agent = (f"import socket,sys; s=socket.create_connection(('127.0.0.1',{port})); s.sendall(b'abc'); "
             "print(s.recv(100).decode()); sys.exit(7)")
    res = subprocess.run([sys.executable, "-I", "-S", str(Path(egress.__file__).parent / "netrelay.py"), path,
                          str(port), "--", sys.executable, "-c", agent], capture_output=True, text=True, timeout=30)
    server.close()
    assert (res.returncode, res.stdout.strip()) == (7, "ABC"), res.stderr


def test_the_worker_takes_the_network_flags_and_names_a_bad_entry(monkeypatch, capsys):
    from eve.daemons.worker.main import parse

    monkeypatch.setenv("EVE_AGENT_NET_ALLOW", "pypi.org")
    cfg = parse(["--database-url", "postgresql://x/y", "--agent-network", "filtered",
                 "--agent-net-allow", "registry.npmjs.org,*.example.com:8443"])
    assert cfg.agent_network == "filtered"
    rules = egress.base_rules(cfg.agent_net_allow)
    assert allowed(rules, "pypi.org", 443) and allowed(rules, "registry.npmjs.org", 80)
    assert allowed(rules, "a.example.com", 8443) and not allowed(rules, "a.example.com", 443)
    with pytest.raises(SystemExit) as exit_:
        parse(["--database-url", "postgresql://x/y", "--agent-net-allow", "https://github.com/org"])
    assert exit_.value.code == 2
    assert "--agent-net-allow: not a host or host:port: 'https://github.com/org'" in capsys.readouterr().err


def test_a_refusal_reads_as_a_sentence_in_eve_logs():
    from eve.cli.output import describe_event

    assert describe_event("egress_refused", {"target": "169.254.169.254:80", "count": 1}) == \
        "Network refused: 169.254.169.254:80 is not on the agents' allowlist"
    assert describe_event("egress_refused", {"target": "x:1", "count": 20, "last": True}).endswith(
        "(later refusals are not logged)")


async def test_one_agent_cannot_hold_more_than_its_share_of_connections():
    async with EgressProxy([]) as proxy:
        idle = [await asyncio.open_unix_connection(proxy.socket_path) for _ in range(egress.MAX_OPEN)]
        await asyncio.sleep(0)  # let the server accept them
        for _ in range(100):
            if len(proxy._tasks) == egress.MAX_OPEN:
                break
            await asyncio.sleep(0.01)
        out = await _ask(proxy, b"CONNECT github.com:443 HTTP/1.1\r\n\r\n")
        for _, w in idle:
            w.close()
    assert out.startswith(b"HTTP/1.1 503") and b"64 connections" in out and proxy.connections == 0


async def test_an_agent_ending_mid_connection_closes_it_without_an_error_in_the_log(caplog):
    """The worker's log treats a Traceback as a bug (seen once: asyncio reported the handler
    task the proxy cancelled when a cancelled agent still held a connection)."""
    held = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.set()
        await reader.read()  # until the proxy closes its side
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        async with EgressProxy([parse_rule(f"127.0.0.1:{port}")]) as proxy:
            reader, writer = await asyncio.open_unix_connection(proxy.socket_path)
            writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).startswith(b"HTTP/1.1 200")
            await asyncio.wait_for(held.wait(), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the agent's side is closed too
        writer.close()
        await asyncio.sleep(0)  # let asyncio run the done-callbacks that would report
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_the_console_marks_a_contained_worker_whose_agents_have_the_hosts_network():
    from eve.tui.widgets.format import sandbox_text

    assert sandbox_text({"sandbox": "uid", "network": "open"}).plain == "uid open net"
    assert sandbox_text({"sandbox": "bwrap", "network": "filtered"}).plain == "bwrap"
    assert sandbox_text({"sandbox": "none", "network": "open"}).plain == "none"  # already red on its own
