from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Message

from services.gateway.paths import StripTrailingSlash
from services.gateway.unexpected_errors import ContainUnexpectedErrors


async def _bug(request: Request) -> Response:
    raise RuntimeError("a bug nobody foresaw")


async def _gone(request: Request) -> Response:
    raise ClientDisconnect()


async def _fine(request: Request) -> Response:
    return Response(b"ok")


def _app() -> Starlette:
    app = Starlette(routes=[Route("/bug", _bug), Route("/gone", _gone), Route("/fine", _fine, methods=["POST"])])
    app.add_middleware(ContainUnexpectedErrors)
    app.add_middleware(StripTrailingSlash)
    return app


def test_a_bug_is_an_openai_shaped_500_and_not_re_raised_to_the_server() -> None:
    # raise_server_exceptions: Starlette's own Exception handler would re-raise here, and uvicorn
    # would then drop the keep-alive connection.
    with TestClient(_app(), raise_server_exceptions=True) as http:
        response = http.get("/bug")
    assert response.status_code == 500
    assert response.json() == {"error": {"message": "internal error", "type": "internal_error", "param": None,
                                         "code": None}}


async def test_a_client_gone_mid_upload_is_not_an_error_and_gets_no_answer() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/gone", "headers": [], "query_string": b""}
    await ContainUnexpectedErrors(_app().router)(scope, receive, send)  # does not raise
    assert sent == []


def test_a_trailing_slash_reaches_the_same_endpoint_without_a_redirect() -> None:
    with TestClient(_app()) as http:
        response = http.post("/fine/", follow_redirects=False)
    assert (response.status_code, response.content) == (200, b"ok")
