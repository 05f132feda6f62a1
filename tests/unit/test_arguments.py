"""Option values argparse's int/float accept but a socket or a screen would misuse."""

from __future__ import annotations

import argparse

import pytest

from cli.main import build_parser
from shared import arguments


@pytest.mark.parametrize("text", ["1", "4000", "65535"])
def test_ports_in_range_are_taken(text: str) -> None:
    assert arguments.port(text) == int(text)


@pytest.mark.parametrize("text", ["0", "65536", "99999", "-1", "abc", "4000.5", ""])
def test_a_port_the_socket_layer_would_wrap_or_refuse_is_an_argument_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        arguments.port(text)


def test_zero_means_any_free_port_where_allowed() -> None:
    assert arguments.port_or_zero("0") == 0
    with pytest.raises(argparse.ArgumentTypeError):
        arguments.port_or_zero("65536")


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon"])
def test_seconds_must_be_positive_and_finite(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        arguments.positive_seconds(text)
    assert arguments.positive_seconds("0.5") == 0.5


@pytest.mark.parametrize("argv", [
    ["up", "--port", "99999"], ["gateway", "--port", "70000"], ["router", "--metrics-port", "65536"],
    ["worker", "--provider", "ollama", "--metrics-port", "-1"], ["simulator", "--flavor", "openai", "--port", "70000"],
    ["dashboard", "--refresh", "0"], ["hub", "--lab", "l", "--node", "n", "--port", "65536"],
])
def test_every_command_refuses_a_bad_port_before_it_starts_anything(argv: list[str],
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(argv[0]).parse_args(argv)
    assert exited.value.code == 2
    assert "argument --" in capsys.readouterr().err
