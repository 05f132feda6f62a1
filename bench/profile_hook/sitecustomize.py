"""cProfile for chosen aiub services, switched on by environment (bench/run.py --profile).

With this directory on PYTHONPATH, a process started as `python -m services NAME ...` whose NAME
is in $AIUB_BENCH_PROFILE runs under cProfile and writes $AIUB_BENCH_PROFILE_DIR/NAME-PID.prof
at exit (the services exit normally on SIGTERM, so atexit runs). Other processes are untouched.
"""

import os
import sys

_wanted = {s for s in os.environ.get("AIUB_BENCH_PROFILE", "").split(",") if s}
_argv = getattr(sys, "orig_argv", [])
if _wanted and "services" in _argv:
    _rest = _argv[_argv.index("services") + 1:]
    if _rest and _rest[0] in _wanted:
        import atexit
        import cProfile

        _profiler = cProfile.Profile()
        _path = os.path.join(os.environ.get("AIUB_BENCH_PROFILE_DIR", "."), f"{_rest[0]}-{os.getpid()}.prof")
        atexit.register(lambda: (_profiler.disable(), _profiler.dump_stats(_path)))
        _profiler.enable()
