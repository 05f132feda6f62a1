import pytest

from services.workers import failures


@pytest.mark.parametrize(("status", "public", "retryable"), [
    (400, 400, False), (404, 404, False), (422, 422, False), (401, 502, False), (403, 502, False),
    (429, 429, True), (408, 408, True), (500, 500, True), (502, 502, True), (503, 503, True), (507, 502, True),
])
def test_backend_status_maps_to_client_status_and_retryability(status: int, public: int, retryable: bool) -> None:
    failure = failures.from_status("vllm", status, "boom")
    assert (failure.status, failure.retryable) == (public, retryable)


def test_client_errors_never_count_against_the_provider() -> None:
    assert failures.from_status("p", 400, None).outcome == "client_error"
    assert failures.from_status("p", 500, None).outcome == "server_error"
    assert failures.from_status("p", 429, None, "12").retry_after == 12.0
    assert failures.from_status("p", 429, None, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after is None


def test_messages_do_not_leak_urls_hosts_or_keys() -> None:
    failure = failures.from_status("p", 500, "cannot reach http://10.0.0.5:8001/v1 with Bearer sk-abcdef1234567890 "
                                   "via 192.168.1.2:80 or localhost:11434")
    message = failure.error.message
    for secret in ("10.0.0.5", "sk-abcdef", "192.168.1.2", "localhost:11434", "http://"):
        assert secret not in message


def test_timeouts_are_retryable_only_before_the_first_token() -> None:
    assert failures.timed_out("p", before_first_token=True).retryable
    assert not failures.timed_out("p", before_first_token=False).retryable
    assert failures.connection_failed("p", "ConnectError").retryable
