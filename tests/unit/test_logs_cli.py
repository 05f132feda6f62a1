"""`aiub logs`: merging, filtering and following the per-service log files."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

from cli import logs as logs_cli


def line(ts: str, event: str, level: str = "info", **fields: Any) -> str:
    return json.dumps({"timestamp": ts, "level": level, "event": event, **fields})


def args(state_dir: Path, **overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"state_dir": str(state_dir), "service": None, "request": None, "level": None,
                              "lines": None, "follow": False, "json": True}
    values.update(overrides)
    return argparse.Namespace(**values)


def run(namespace: argparse.Namespace, polls: list[None] | None = None) -> list[str]:
    out = io.StringIO()
    assert logs_cli.main(namespace, out, iter(polls) if polls is not None else None) == 0
    return out.getvalue().splitlines()


def write(path: Path, *lines: str) -> None:
    with path.open("a") as f:
        f.writelines(text + "\n" for text in lines)


def test_lines_of_all_services_merge_in_time_order(tmp_path: Path) -> None:
    write(tmp_path / "gateway.log", line("2026-01-01T10:00:00.100Z", "g1"), line("2026-01-01T10:00:00.300Z", "g2"))
    write(tmp_path / "router.log", line("2026-01-01T10:00:00.200Z", "r1"))
    events = [json.loads(text)["event"] for text in run(args(tmp_path))]
    assert events == ["g1", "r1", "g2"]


def test_request_filter_keeps_every_line_of_that_request(tmp_path: Path) -> None:
    write(tmp_path / "gateway.log", line("2026-01-01T10:00:00.1Z", "received", request_id="req_abc123"),
          line("2026-01-01T10:00:00.2Z", "received", request_id="req_other"))
    write(tmp_path / "worker-ollama.log", line("2026-01-01T10:00:00.3Z", "attempt_finished", request_id="req_abc123"))
    found = [json.loads(text) for text in run(args(tmp_path, request="req_abc123"))]
    assert [(f["event"], f["request_id"]) for f in found] == [("received", "req_abc123"),
                                                            ("attempt_finished", "req_abc123")]


def test_service_selects_a_family_of_files(tmp_path: Path) -> None:
    for name in ("worker-ollama", "worker-vllm", "workerish", "router"):
        write(tmp_path / f"{name}.log", line("2026-01-01T10:00:00Z", name))
    events = {json.loads(text)["event"] for text in run(args(tmp_path, service="worker"))}
    assert events == {"worker-ollama", "worker-vllm"}


def test_level_filter_and_tail_count(tmp_path: Path) -> None:
    write(tmp_path / "health.log", *(line(f"2026-01-01T10:00:0{i}Z", f"e{i}", "info") for i in range(5)),
          line("2026-01-01T10:00:06Z", "bad", "warning"), line("2026-01-01T10:00:07Z", "worse", "error"))
    assert [json.loads(t)["event"] for t in run(args(tmp_path, level="warning"))] == ["bad", "worse"]
    assert [json.loads(t)["event"] for t in run(args(tmp_path, lines=2))] == ["bad", "worse"]


def test_a_traceback_line_keeps_its_place(tmp_path: Path) -> None:
    write(tmp_path / "router.log", line("2026-01-01T10:00:01Z", "boom", "error"), "Traceback (most recent call last):")
    write(tmp_path / "gateway.log", line("2026-01-01T10:00:00Z", "early"), line("2026-01-01T10:00:02Z", "late"))
    texts = run(args(tmp_path))
    assert texts[1].startswith('{"timestamp": "2026-01-01T10:00:01Z"') and texts[2].startswith("Traceback")


def test_pretty_puts_the_request_fields_first(tmp_path: Path) -> None:
    write(tmp_path / "worker-ollama.log", line("2026-01-01T10:00:00.123456Z", "attempt_finished", service="worker",
                                               zeta=1, provider="ollama", request_id="req_1", latency_ms=12.5))
    (text,) = run(args(tmp_path, json=False))
    assert text.split() == ["10:00:00.123", "INFO", "worker-ollama", "attempt_finished", "request_id=req_1",
                            "provider=ollama", "latency_ms=12.5", "zeta=1"]


def test_follow_prints_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    write(log, line("2026-01-01T10:00:00Z", "old"))
    follower = logs_cli.Follower(tmp_path, None)
    with log.open("a") as f:
        f.write(line("2026-01-01T10:00:01Z", "new") + "\n" + '{"timestamp": "2026-01-01T10:00:02Z", "ev')
    assert [json.loads(x.text)["event"] for x in follower.poll()] == ["new"]
    with log.open("a") as f:
        f.write('ent": "completed"}\n')
    write(tmp_path / "gateway.log", line("2026-01-01T10:00:03Z", "new file"))
    assert [json.loads(x.text)["event"] for x in follower.poll()] == ["completed", "new file"]
    log.write_text(line("2026-01-01T10:00:04Z", "after truncation") + "\n")
    assert [json.loads(x.text)["event"] for x in follower.poll()] == ["after truncation"]


def test_follow_mode_prints_the_tail_then_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    write(log, line("2026-01-01T10:00:00Z", "old"))

    class Appending:
        def __iter__(self) -> Any:
            write(log, line("2026-01-01T10:00:01Z", "new"))
            yield None

    out = io.StringIO()
    assert logs_cli.main(args(tmp_path, follow=True), out, iter(Appending())) == 0
    assert [json.loads(t)["event"] for t in out.getvalue().splitlines()] == ["old", "new"]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    assert logs_cli.main(args(tmp_path / "nope"), io.StringIO()) == 1
