"""compose.yaml, the Dockerfile and the lock, checked without a Docker engine.

Every command is parsed by the real CLI parser, every file the image copies must exist and not
be ignored, scalable services must be scalable (no container names, no host ports), every
service has a healthcheck, and each service talks to NATS as its own user.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from cli.main import build_parser
from shared.embedded_nats import server_binary

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
AIUB = {name: s for name, s in SERVICES.items() if "build" in s}
PROVIDERS: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "config" / "providers.yaml").read_text())["providers"]
AUTH = (ROOT / "deploy" / "nats" / "auth.conf").read_text()
SCALABLE = [name for name in AIUB if name in ("router", "health") or name.startswith("worker-")]
ROLE = {"gateway": "gateway", "router": "router", "health": "health"} | {w: "worker" for w in AIUB
                                                                        if w.startswith("worker-")}
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` against `env`."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise KeyError(f"{name} is required: {arg}")
        return arg if op == ":-" else ""
    return _INTERPOLATION.sub(one, value)


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.mark.parametrize("name", sorted(AIUB))
def test_every_command_parses_with_the_real_cli(name: str) -> None:
    command = SERVICES[name]["command"]
    try:
        args = build_parser().parse_args(command)
    except SystemExit:
        pytest.fail(f"{name}: `aiub {' '.join(command)}` does not parse")
    assert args.command == ("worker" if name.startswith("worker-") else name.split("-")[0])


def test_scalable_services_have_no_container_names_and_no_host_ports() -> None:
    assert not [name for name, s in SERVICES.items() if "container_name" in s]
    assert {"router", "health", "worker-ollama", "worker-vllm"} <= set(SCALABLE)
    assert not [name for name in SCALABLE if SERVICES[name].get("ports")]


def test_every_service_has_a_healthcheck_that_probes_its_own_port() -> None:
    for name, service in SERVICES.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and "NONE" not in test, name
        if name in SCALABLE:
            port = environment(name)["AIUB_METRICS_PORT"]
            assert f"127.0.0.1:{port}/metrics" in " ".join(test), name
    gateway = SERVICES["gateway"]
    assert "127.0.0.1:4000/ready" in " ".join(gateway["healthcheck"]["test"])


def test_a_worker_service_per_provider_key() -> None:
    workers = {name.removeprefix("worker-"): s for name, s in AIUB.items() if name.startswith("worker-")}
    missing = set(PROVIDERS) - set(workers)
    assert not missing, f"add worker-<key> to compose.yaml for {sorted(missing)}"
    for key, service in workers.items():
        assert service["command"] == ["worker", "--provider", key]
        if "profiles" not in service:
            assert key in PROVIDERS, f"worker-{key} starts by default but config/providers.yaml has no {key!r}"


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_workers_and_health_get_every_address_their_provider_reads(key: str) -> None:
    variables = [m.group(1) for m in _INTERPOLATION.finditer(PROVIDERS[key]["base_url"])]
    for service in (f"worker-{key}", "health"):
        env = environment(service)
        for variable in variables:
            assert variable in env, f"{service}: set {variable} (config/providers.yaml {key}.base_url reads it)"
            host = urlsplit(interpolate(env[variable], {})).hostname
            assert host not in ("127.0.0.1", "localhost"), f"{service}: {variable} points inside the container"
    if PROVIDERS[key].get("env_var"):
        assert PROVIDERS[key]["env_var"] in environment(f"worker-{key}")


def test_each_service_connects_to_nats_as_its_own_user_with_a_password_from_the_environment() -> None:
    nats_env = environment("nats")
    for variable in set(re.findall(r"\$(NATS_[A-Z_]+_PASSWORD)", AUTH)):
        assert variable in nats_env and ":?" in nats_env[variable], f"nats: pass {variable}, required"
    for name, role in ROLE.items():
        url = urlsplit(interpolate(environment(name)["NATS_URL"], {f"NATS_{role.upper()}_PASSWORD": "pw"}))
        assert (url.username, url.password, url.hostname, url.port) == (role, "pw", "nats", 4222), name
        assert re.search(rf"user: {role}\s+password: \$NATS_{role.upper()}_PASSWORD", AUTH), role


def test_the_gateway_binds_beyond_loopback_and_requires_a_master_key() -> None:
    gateway = SERVICES["gateway"]
    args = build_parser().parse_args(gateway["command"])
    assert (args.host, args.port, args.insecure_no_auth) == ("0.0.0.0", 4000, False)
    assert gateway["ports"][0].endswith(":4000")
    with pytest.raises(KeyError, match="AIUB_MASTER_KEY"):
        interpolate(environment("gateway")["AIUB_MASTER_KEY"], {})
    assert environment("gateway")["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD}@redis:6379")


def test_nats_keeps_jetstream_state_in_a_volume_and_runs_the_tested_server_version() -> None:
    conf = (ROOT / "deploy" / "nats" / "nats.conf").read_text()
    assert re.search(r"jetstream \{\s+store_dir: /data", conf)
    assert "include ./auth.conf" in conf
    volumes = SERVICES["nats"]["volumes"]
    assert "./deploy/nats:/etc/nats:ro" in volumes
    assert any(v.endswith(":/data") and v.split(":")[0] in COMPOSE["volumes"] for v in volumes)
    version = subprocess.run([server_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    assert SERVICES["nats"]["image"] == f"nats:{version.split('v')[-1].strip()}-alpine"


def test_the_nats_config_is_valid_and_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    env = {**os.environ, **{v: "pw" for v in re.findall(r"\$(NATS_[A-Z_]+_PASSWORD)", AUTH)}}
    conf = ROOT / "deploy" / "nats" / "nats.conf"
    ok = subprocess.run([server_binary(), "-c", str(conf), "-t"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env.pop("NATS_WORKER_PASSWORD")
    missing = subprocess.run([server_binary(), "-c", str(conf), "-t"], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "NATS_WORKER_PASSWORD" in missing.stderr


def test_the_demo_profile_serves_every_model_demo_env_points_at() -> None:
    demo = env_file(ROOT / "deploy" / "demo.env")
    local = {key: p for key, p in PROVIDERS.items() if p.get("status", "active") == "active"}
    assert {"ollama", "llama_cpp_python", "llama_cpp_native", "vllm"} <= set(local)
    for key, provider in local.items():
        url = urlsplit(interpolate(provider["base_url"], demo))
        simulator = SERVICES.get(url.hostname or "")
        assert simulator is not None and simulator.get("profiles") == ["demo"], f"{key}: {url.geturl()}"
        args = build_parser().parse_args(simulator["command"])
        assert (args.host, args.port) == ("0.0.0.0", url.port)
        assert args.flavor == ("ollama" if provider["type"] == "ollama" else "openai"), key
        served = set(args.models.split(","))
        wanted = {(spec or {}).get("backend_model", name) for name, spec in (provider.get("models") or {}).items()}
        assert wanted <= served, f"{url.hostname} lacks {wanted - served} for {key}"


def test_prometheus_scrapes_every_service_that_serves_metrics() -> None:
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {(name, sd["port"]) for job in scrape["scrape_configs"] for sd in job.get("dns_sd_configs", [])
               for name in sd["names"]}
    for name in SCALABLE:
        env = environment(name)
        assert env["AIUB_METRICS_HOST"] == "0.0.0.0", name
        assert (name, int(env["AIUB_METRICS_PORT"])) in targets, f"prometheus.yml does not scrape {name}"
    assert ("gateway", 4000) in targets
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in SERVICES["prometheus"]["volumes"]


def test_env_example_names_every_required_variable() -> None:
    example = (ROOT / "deploy" / "env.example").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "compose.yaml").read_text()))
    assert required >= {"AIUB_MASTER_KEY", "REDIS_PASSWORD", "NATS_WORKER_PASSWORD"}
    assert not [v for v in required if not re.search(rf"^{v}=$", example, re.MULTILINE)]


def test_mounted_paths_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _ignored(path: str) -> bool:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    ignored = False
    for pattern in patterns:  # as Docker reads it: the last matching line wins, `!` re-includes
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            ignored = not negated
    return ignored


def test_every_file_the_image_copies_exists_and_is_in_the_build_context() -> None:
    copies = [line.split()[1:-1] for line in DOCKERFILE.splitlines()
              if line.startswith("COPY ") and "--from=" not in line]
    sources = [s for sources in copies for s in sources]
    assert {"uv.lock", "deploy/uv.txt", "pyproject.toml", "shared", "services", "cli", "config"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source), f".dockerignore excludes {source}"
    assert _ignored(".venv") and _ignored("tests") and _ignored(".git")


def test_the_image_is_slim_pinned_non_root_and_installs_from_the_lock() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert DOCKERFILE.count("FROM ${PYTHON_IMAGE}") == 2
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "pip install --require-hashes --no-deps -r deploy/uv.txt" in DOCKERFILE
    assert "uv sync --locked --no-editable" in DOCKERFILE
    assert 'ENTRYPOINT ["aiub"]' in DOCKERFILE


def _locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {package["name"]: package["version"] for package in lock["package"] if "version" in package}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_what_pyproject_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = _locked_versions()
    for dependency in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        name, version = dependency.split("==")
        assert locked.get(_canonical(name)) == version, f"{dependency}: run ./dev lock"


def test_the_lock_and_the_uv_bootstrap_are_current_without_asking_the_registry() -> None:
    checked = subprocess.run([sys.executable, str(ROOT / "deploy" / "lock.py"), "--check"],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_lock_check_catches_a_pin_the_lock_does_not_have(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(re.sub(r'"orjson==([^"]+)"', r'"orjson==\1.post99"', pyproject.read_text()))
    uv = Path(sys.executable).with_name("uv")
    checked = subprocess.run([str(uv), "lock", "--check", "--offline"], cwd=tmp_path,
                             capture_output=True, text=True, check=False)
    assert checked.returncode != 0


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    locked = _locked_versions()
    installed = {_canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    drift = {name: (version, locked[name]) for name, version in installed.items()
             if name in locked and name != "aiub" and version != locked[name]}
    assert drift == {}, "installed (version, locked): run ./dev setup"
    assert {"pytest", "nats-py", "uv"} <= installed.keys()


def test_the_bootstrap_pins_uv_at_its_locked_version_with_every_hash() -> None:
    bootstrap = (ROOT / "deploy" / "uv.txt").read_text()
    assert f"uv=={_locked_versions()['uv']} " in bootstrap
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (uv,) = [package for package in lock["package"] if package["name"] == "uv"]
    for artifact in [*uv["wheels"], uv["sdist"]]:
        assert f"--hash={artifact['hash']}" in bootstrap
