import httpx

from services.workers.backend import refused


def _timeout(cls: type[httpx.TimeoutException], cause: BaseException) -> httpx.TimeoutException:
    error = cls("boom")
    error.__cause__ = cause
    return error


def test_a_refused_connection_reported_as_connect_timeout_is_told_apart_from_a_timeout() -> None:
    assert refused(_timeout(httpx.ConnectTimeout, ConnectionRefusedError(111, "Connect call failed")))
    assert not refused(_timeout(httpx.ConnectTimeout, TimeoutError()))
    assert not refused(_timeout(httpx.ReadTimeout, ConnectionRefusedError(111, "x")))
    assert not refused(httpx.ConnectTimeout("no cause"))
