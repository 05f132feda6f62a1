"""cProfile for chosen aiub services, switched on by environment (bench/run.py --profile).

With this directory on PYTHONPATH, a process started as `python -m cli NAME ...` whose NAME
is in $AIUB_BENCH_PROFILE runs under cProfile and writes $AIUB_BENCH_PROFILE_DIR/NAME-PID.prof
when it exits. Other processes are untouched.

Two exits to cover: services that handle SIGTERM themselves return normally (atexit runs);
uvicorn re-raises the signal after its shutdown, so the gateway dies by the default action of
whatever handler was installed before it started -- ours, which writes the profile first.
"""

import os
import sys

_wanted = {s for s in os.environ.get("AIUB_BENCH_PROFILE", "").split(",") if s}
_argv = getattr(sys, "orig_argv", [])
if _wanted and "cli" in _argv:
    _rest = _argv[_argv.index("cli") + 1:]
    if _rest and _rest[0] in _wanted:
        import atexit
        import cProfile
        import signal
        import time

        # Wall time (cProfile's C timer) by default: cheap, but on a busy machine it also counts time
        # spent preempted. "cpu" times with thread CPU time through a Python callback, which adds
        # ~1 µs per call and so inflates functions that are called often (isinstance, len).
        _cpu = os.environ.get("AIUB_BENCH_PROFILE_TIMER") == "cpu"
        _profiler = cProfile.Profile(time.thread_time) if _cpu else cProfile.Profile()
        _path = os.path.join(os.environ.get("AIUB_BENCH_PROFILE_DIR", "."), f"{_rest[0]}-{os.getpid()}.prof")
        _done = []

        def _dump() -> None:
            if not _done:
                _done.append(True)
                _profiler.disable()
                _profiler.dump_stats(_path)

        def _on_signal(signum: int, _frame: object) -> None:
            _dump()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        atexit.register(_dump)
        for _sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(_sig, _on_signal)
        _profiler.enable()
