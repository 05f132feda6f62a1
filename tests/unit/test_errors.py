import pytest

from shared.errors import retry_after_header


@pytest.mark.parametrize(("seconds", "header"), [(20.05, "21"), (21.0, "21"), (0.2, "1"), (0.0, "1"), (6.9, "7")])
def test_retry_after_is_whole_seconds_rounded_up_so_an_obedient_client_is_admitted(seconds: float,
                                                                                    header: str) -> None:
    assert retry_after_header(seconds) == header
