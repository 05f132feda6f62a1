"""Finding the running stack: cli/stack_dir.py's rule, and the shell widgets' copy of it
(wth-widgets/litellm/bin/common.sh), run side by side over the same directories."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cli import stack_dir

COMMON = Path(__file__).resolve().parents[2] / "wth-widgets" / "litellm" / "bin" / "common.sh"


def a_stack(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:4321"}))
    return directory


def shell_answer(cwd: Path, environ: dict[str, str]) -> str:
    """What the widgets settle on: their AIUB_STATE_DIR after common.sh ("" when none)."""
    env = {"PATH": os.environ["PATH"], **environ}
    done = subprocess.run(["bash", "-c", f'. "{COMMON}" && printf %s "$AIUB_STATE_DIR"'], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def python_answer(cwd: Path, environ: dict[str, str]) -> str:
    found = stack_dir.locate(None, environ.get("AIUB_STATE_DIR"), stack_dir.pointer_from(environ), cwd=cwd)
    return "" if found.state_dir is None else str(found.state_dir)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "home"


def cases(tmp_path: Path, home: Path) -> dict[str, tuple[Path, dict[str, str], str]]:
    """name → (working directory, environment, the state dir both must find)."""
    running = a_stack(tmp_path / "repo" / ".aiub")
    elsewhere = tmp_path / "elsewhere"
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    xdg = tmp_path / "xdg"
    return {
        "nothing anywhere": (elsewhere, {"HOME": str(home)}, ""),
        "./.aiub with a stack.json": (tmp_path / "repo", {"HOME": str(home)}, str(running)),
        "AIUB_STATE_DIR as given": (elsewhere, {"HOME": str(home), "AIUB_STATE_DIR": str(stopped)}, str(stopped)),
        "the pointer under ~/.local/state": (elsewhere, {"HOME": str(home)}, str(running)),
        "the pointer under XDG_STATE_HOME": (elsewhere, {"HOME": str(home), "XDG_STATE_HOME": str(xdg)},
                                             str(running)),
        "a pointer to a stopped stack": (elsewhere, {"HOME": str(home), "XDG_STATE_HOME": str(xdg / "old")}, ""),
    }


def test_python_and_the_widgets_find_the_same_stack(tmp_path: Path, home: Path) -> None:
    all_cases = cases(tmp_path, home)
    running = str(tmp_path / "repo" / ".aiub")
    for name, (cwd, environ, expected) in all_cases.items():
        pointer = stack_dir.pointer_from(environ)
        assert pointer is not None
        if name.startswith("the pointer"):
            stack_dir.record(Path(running), pointer)
        elif name == "a pointer to a stopped stack":
            stack_dir.record(tmp_path / "stopped", pointer)
        assert python_answer(cwd, environ) == expected, name
        assert shell_answer(cwd, environ) == expected, name
        if name.startswith("the pointer"):
            pointer.unlink()


def test_record_writes_an_absolute_path_and_forget_removes_only_its_own(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pointer = stack_dir.pointer_file(None, str(tmp_path / "home"))
    assert pointer == tmp_path / "home" / ".local" / "state" / "aiub" / "current"
    first, second = a_stack(tmp_path / "one"), a_stack(tmp_path / "two")
    stack_dir.record(Path("one"), pointer)
    assert pointer.read_text() == f"{first}\n"
    stack_dir.record(second, pointer)  # a second `aiub up` started later
    stack_dir.forget(first, pointer)  # the first one stopping leaves the second's pointer alone
    assert pointer.read_text() == f"{second}\n"
    stack_dir.forget(second, pointer)
    assert not pointer.exists()
    stack_dir.forget(second, pointer)  # nothing to remove: no error


def test_an_explicit_state_dir_wins_and_says_whether_a_stack_is_there(tmp_path: Path) -> None:
    running = a_stack(tmp_path / "running")
    found = stack_dir.locate(running, "/ignored", None, cwd=tmp_path)
    assert (found.state_dir, found.how, found.found) == (running, "--state-dir", True)
    empty = stack_dir.locate(tmp_path / "none", None, None, cwd=tmp_path)
    assert (empty.state_dir, empty.found) == (tmp_path / "none", False)
    nowhere = stack_dir.locate(None, None, None, cwd=tmp_path)
    assert (nowhere.state_dir, nowhere.found, nowhere.stack_file) == (None, False, None)
