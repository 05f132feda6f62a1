import inspect
import re

import pytest

from shared import errors
from shared.errors import (
    AiubError,
    BadRequest,
    ClientError,
    ContextLengthExceeded,
    DeadlineExceeded,
    Forbidden,
    HeadersTooLarge,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    RouterFailed,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedCapability,
    UnsupportedEncoding,
    UpstreamError,
    error_json,
    retry_after_header,
)
from shared.messages import CONTEXT_LENGTH_EXCEEDED, Error, ErrorBody

# A row of the drawing: the tree's prefix, the class, its status (or 4xx: relayed), type and code.
_ROW = re.compile(r"^    (?P<prefix>(?:[│ ]   )*(?:[├└]── )?)(?P<name>[A-Z]\w+)\s+(?P<status>\d{3}|4xx)\s+"
                  r"(?P<type>[a-z_]+)\s+(?P<code>[a-z_]+|-)")


def drawn() -> dict[str, tuple[str | None, str, str, str | None]]:
    """{class: (parent, status, type, code)} as the docstring of shared/errors.py draws them."""
    assert errors.__doc__ is not None
    rows: dict[str, tuple[str | None, str, str, str | None]] = {}
    parents: list[str] = []  # the open branch, one name per depth
    for line in errors.__doc__.splitlines():
        row = _ROW.match(line)
        if row is None:
            continue
        depth = len(row["prefix"]) // 4
        del parents[depth:]
        assert len(parents) == depth, f"{row['name']} is drawn below no parent"
        rows[row["name"]] = (parents[-1] if parents else None, row["status"], row["type"],
                             None if row["code"] == "-" else row["code"])
        parents.append(row["name"])
    return rows


def tree_classes() -> dict[str, type[AiubError]]:
    return {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, AiubError) and cls.__module__ == errors.__name__}


def test_the_drawing_shows_every_class_of_the_tree_and_only_those() -> None:
    assert set(drawn()) == set(tree_classes())


def test_the_drawing_shows_each_class_under_its_base() -> None:
    for name, (parent, *_) in drawn().items():
        cls = tree_classes()[name]
        base = None if cls is AiubError else cls.__bases__[0].__name__
        assert (name, parent) == (name, base)


def test_the_drawing_shows_each_class_status_type_and_code() -> None:
    for name, (_, status, type_, code) in drawn().items():
        cls = tree_classes()[name]
        # 4xx: the status is relayed, so each instance names its own.
        assert (name, status, type_, code) == (name, "4xx" if cls is ClientError else str(cls.status), cls.type,
                                               cls.code)


CASES = [
    (AiubError("x"), 500, "internal_error", None),
    (BadRequest("x"), 400, "invalid_request_error", None),
    (UnsupportedCapability("x"), 400, "invalid_request_error", "unsupported_capability"),
    (ContextLengthExceeded("x"), 400, "invalid_request_error", CONTEXT_LENGTH_EXCEEDED),
    (ModelNotFound("x"), 404, "invalid_request_error", "model_not_found"),
    (RequestTimeout("x"), 408, "invalid_request_error", "request_timeout"),
    (PayloadTooLarge("x"), 413, "invalid_request_error", "payload_too_large"),
    (UnsupportedEncoding("x"), 415, "invalid_request_error", "unsupported_content_encoding"),
    (HeadersTooLarge("x"), 431, "invalid_request_error", "headers_too_large"),
    (ClientError(422, "x"), 422, "invalid_request_error", None),
    (ClientError(405, "x", code="405"), 405, "invalid_request_error", "405"),
    (Unauthorized("x"), 401, "authentication_error", "invalid_api_key"),
    (Forbidden("x"), 403, "permission_error", None),
    (RateLimited("x"), 429, "rate_limit_error", "rate_limit_exceeded"),
    (UpstreamError("x"), 502, "upstream_error", None),
    (UpstreamError("x", status=409, code="upstream_transient"), 409, "upstream_error", "upstream_transient"),
    (UpstreamError("x", status=503, code="upstream_error"), 503, "upstream_error", "upstream_error"),
    (ServiceUnavailable("x"), 503, "service_unavailable", "no_provider_available"),
    (ServiceUnavailable("x", code="worker_shutdown"), 503, "service_unavailable", "worker_shutdown"),
    (RouterFailed("x"), 500, "service_unavailable", "router_error"),
    (DeadlineExceeded("x"), 504, "timeout", "deadline_exceeded"),
]


@pytest.mark.parametrize(("error", "status", "type_", "code"), CASES)
def test_each_class_gives_its_status_type_and_code(error: AiubError, status: int, type_: str,
                                                   code: str | None) -> None:
    assert (error.status, error.body()) == (status, ErrorBody(message="x", type=type_, code=code))


def test_every_class_of_the_tree_is_in_the_table_above() -> None:
    covered = {type(error) for error, *_ in CASES}
    assert covered == set(tree_classes().values())


def test_the_invalid_request_family_shares_its_type() -> None:
    for cls in tree_classes().values():
        assert (cls.type == "invalid_request_error") == issubclass(cls, BadRequest), cls


@pytest.mark.parametrize("status", [399, 500, 200])
def test_a_client_error_is_4xx(status: int) -> None:
    with pytest.raises(ValueError):
        ClientError(status, "x")


@pytest.mark.parametrize("status", [400, 404, 429, 200])
def test_an_upstream_error_is_408_409_or_5xx(status: int) -> None:
    with pytest.raises(ValueError):
        UpstreamError("x", status=status)


def test_param_and_retry_after_travel_in_body_and_frame() -> None:
    refused = RateLimited("slow down", retry_after=7.0)
    assert refused.frame("a1", 3, retryable=True, provider="p") == Error(
        attempt="a1", seq=3, status=429, retryable=True, retry_after=7.0, provider="p",
        error=ErrorBody(message="slow down", type="rate_limit_error", code="rate_limit_exceeded"))
    assert BadRequest("'n' must be 1", param="n").frame("a1", 0) == Error(
        attempt="a1", seq=0, status=400, error=ErrorBody(message="'n' must be 1", type="invalid_request_error",
                                                         param="n"))


def test_error_json_is_openai_s_envelope() -> None:
    assert error_json(ModelNotFound("no such model", param="model").body()) == (
        b'{"error":{"message":"no such model","type":"invalid_request_error","param":"model",'
        b'"code":"model_not_found"}}')


def test_errors_are_equal_when_the_client_would_be_told_the_same() -> None:
    assert ServiceUnavailable("none", retry_after=3.0) == ServiceUnavailable("none", retry_after=3.0)
    assert hash(ModelNotFound("m")) == hash(ModelNotFound("m"))
    assert ServiceUnavailable("none", retry_after=3.0) != ServiceUnavailable("none", retry_after=4.0)
    assert ServiceUnavailable("none") != RouterFailed("none", code="no_provider_available")
    assert BadRequest("x") != BadRequest("x", param="n")


@pytest.mark.parametrize(("seconds", "header"), [(20.05, "21"), (21.0, "21"), (0.2, "1"), (0.0, "1"), (6.9, "7")])
def test_retry_after_is_whole_seconds_rounded_up_so_an_obedient_client_is_admitted(seconds: float,
                                                                                    header: str) -> None:
    assert retry_after_header(seconds) == header


def test_a_logged_nats_address_never_carries_the_password() -> None:
    from urllib.parse import urlparse

    from shared.bus import server_address

    class Connected:
        connected_url = urlparse("nats://gateway:s3cret@nats:4222")

    assert server_address(Connected()) == "nats:4222"  # type: ignore[arg-type]


def test_every_error_body_is_built_by_a_class_of_the_tree() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    built_by_hand = []
    for package in ("cli", "services", "shared"):
        for path in (root / package).rglob("*.py"):
            if path == root / "shared" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                name = getattr(node.func, "id", getattr(node.func, "attr", "")) if isinstance(node, ast.Call) else ""
                if name == "ErrorBody":
                    built_by_hand.append(f"{path.relative_to(root)}:{node.lineno}")
    assert built_by_hand == []
