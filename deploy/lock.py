"""The lock: `uv.lock` pins every package `./dev`, CI and the image install, with hashes.

`uv.lock` is uv's universal lock of pyproject.toml (runtime and the `test` extra, every
platform); `deploy/uv.txt` pins uv itself, hashed, for pip to bootstrap it on a machine that
has nothing but Python. Both are written here, from the lock, so they cannot disagree.

    ./dev lock                # after changing a pin in pyproject.toml (keeps every other version)
    ./dev lock --upgrade      # take the newest versions the pins allow, then run ./dev test
    ./dev lock --check        # offline: non-zero if uv.lock or deploy/uv.txt is stale
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "deploy" / "uv.txt"
HEADER = "# uv, pinned and hashed from uv.lock by `./dev lock`; do not edit.\n"


def locked_package(name: str) -> dict[str, object]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    for package in lock["package"]:
        if package["name"] == name:
            return dict(package)
    raise LookupError(f"{name} is not in uv.lock")


def render_bootstrap() -> str:
    """A pip requirements file for uv at its locked version, with every artifact's hash."""
    uv = locked_package("uv")
    artifacts = [*uv.get("wheels", []), uv["sdist"]]  # type: ignore[list-item]
    hashes = "".join(f" \\\n    --hash={artifact['hash']}" for artifact in artifacts)
    return f"{HEADER}uv=={uv['version']}{hashes}\n"


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("uv")), *args], cwd=ROOT, text=True,
                          capture_output=True, check=False)


def check() -> list[str]:
    """What is stale, without asking the registry anything."""
    problems = []
    if uv("lock", "--check", "--offline").returncode != 0:
        problems.append("uv.lock does not match pyproject.toml")
    if not BOOTSTRAP.exists() or BOOTSTRAP.read_text() != render_bootstrap():
        problems.append("deploy/uv.txt does not match uv.lock")
    return problems


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = check()
        for problem in problems:
            print(f"{problem}: run ./dev lock", file=sys.stderr)
        return 1 if problems else 0
    locked = uv("lock", *argv)
    sys.stderr.write(locked.stderr)
    if locked.returncode != 0:
        return locked.returncode
    BOOTSTRAP.write_text(render_bootstrap())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
