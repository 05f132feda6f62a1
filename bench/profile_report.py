"""Hotspots from the cProfile files that `bench/run.py --profile` writes, in µs per request.

  python bench/profile_report.py /tmp/aiub-bench/run-X/profiles/*.prof --requests 12345 [--top 20]

Startup (imports, class creation) and the event loop's own wait (uvloop's run_forever is C, so
time blocked in epoll is charged to asyncio.run) are left out: what remains is per-request work.
cProfile roughly doubles the cost of Python calls, so compare rows with each other, not with the
CPU µs/request table.
"""

from __future__ import annotations

import argparse
import pstats
from pathlib import Path

# Startup and the loop's idle wait, not per-request work.
SKIP = ("<frozen importlib", "marshal.loads", "builtins.compile", "builtins.exec", "__build_class__", "runners.py",
        "_imp.create_dynamic", "set_default_verify_paths", "re/_parser.py", "re/_compiler.py", "dataclasses.py",
        "typing.py", "enum.py", "_io.BufferedReader", "io.open_code", "posix.stat", "_abc_init", "(serve)",
        "(_run_once)", "(run_forever)", "(run_until_complete)", "(main)", "(<module>)")


def label(func: tuple[str, int, str]) -> str:
    path, line, name = func
    if path == "~":
        return name
    for marker in ("site-packages/", "/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{line}({name})"


def hotspots(path: Path, requests: int, top: int, key: str) -> list[str]:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for func, (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        name = label(func)
        if any(s in name or s in func[0] for s in SKIP):
            continue
        rows.append((tottime if key == "tottime" else cumtime, ncalls, name))
    rows.sort(reverse=True)
    return [f"  {t / requests * 1e6:8.1f} µs  {n / requests:6.2f} calls  {name}" for t, n, name in rows[:top]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--requests", type=int, required=True, help="requests the profiled processes served")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--cumulative", action="store_true", help="rank by time including callees")
    a = ap.parse_args(argv)
    for f in a.files:
        print(f"== {f.name} ({'cumulative' if a.cumulative else 'own'} time per request)")
        print("\n".join(hotspots(f, a.requests, a.top, "cumtime" if a.cumulative else "tottime")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
