"""CORS allows every method the gateway's routes answer: a browser may delete a stored response."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.routing import Route

from services.gateway.app import CORS_METHODS, create_app
from shared.config import Config, ModelMappingsFile, RuntimeFile

ORIGIN = "https://app.example"


def _app(tmp_path: Path) -> FastAPI:
    config = Config(directory=tmp_path, providers={}, mappings=ModelMappingsFile(),
                    runtime=RuntimeFile.model_validate({"gateway": {"cors_origins": [ORIGIN]}}))
    return create_app(config, state_dir=tmp_path)


def test_every_method_a_route_answers_is_allowed(tmp_path: Path) -> None:
    app = create_app(Config(directory=tmp_path, providers={}, mappings=ModelMappingsFile(), runtime=RuntimeFile()),
                     state_dir=tmp_path)
    used = {method for route in app.routes if isinstance(route, Route) for method in route.methods or ()}
    # PUT reaches only the Ollama door's refusal of model management (a 404 in any case).
    assert used - {"PUT"} <= set(CORS_METHODS)


async def test_a_browser_may_delete_a_stored_response(tmp_path: Path) -> None:
    transport = httpx.ASGITransport(app=_app(tmp_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for method in ("DELETE", "POST", "GET"):
            preflight = await client.options("/v1/responses/resp_1", headers={
                "origin": ORIGIN, "access-control-request-method": method,
                "access-control-request-headers": "authorization"})
            assert preflight.status_code == 200, (method, preflight.text)
            assert method in preflight.headers["access-control-allow-methods"]
            assert preflight.headers["access-control-allow-origin"] == ORIGIN
