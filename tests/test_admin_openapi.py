"""/api/v1/openapi.json: a valid OpenAPI 3.1 document of exactly the routes the server answers."""

from __future__ import annotations

import orjson
from openapi_spec_validator import validate

from rtcserver.server import admin
from tests.conftest import StartServer
from tests.test_admin import AUTH, TOKEN, api
from tests.test_http import body_of, get, http_exchange, status_of

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
EXAMPLES = {"{number}": "12", "{id}": "someone", "{name}": "nobody"}


def documented() -> dict[str, set[str]]:
    document = orjson.loads(admin.openapi_document())
    return {
        path: {method.upper() for method in item if method.upper() in METHODS}
        for path, item in document["paths"].items()
    }


def example(path: str) -> str:
    for placeholder, value in EXAMPLES.items():
        path = path.replace(placeholder, value)
    return path


def test_the_document_is_valid_openapi_3_1() -> None:
    document = orjson.loads(admin.openapi_document())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_the_document_lists_exactly_the_routing_table() -> None:
    assert documented() == {path: set(methods) for path, methods in admin.ROUTES.items()}


async def test_the_server_serves_the_document_behind_the_token(start_server: StartServer) -> None:
    server = await start_server(admin_token=TOKEN)
    reply = await http_exchange(server.port, get("/api/v1/openapi.json", "GET", AUTH))
    assert status_of(reply) == 200
    assert orjson.loads(body_of(reply)) == orjson.loads(admin.openapi_document())
    assert (await api(server.port, "/api/v1/openapi.json", auth=""))[0] == 401


async def test_every_documented_route_answers_and_nothing_else_does(
    start_server: StartServer,
) -> None:
    server = await start_server(admin_token=TOKEN)
    for path, methods in documented().items():
        for method in METHODS:
            status, body = await api(server.port, example(path), method)
            assert isinstance(body, dict)
            if method in methods:
                assert status != 405, (method, path, body)
                assert not str(body.get("error", "")).startswith("no such endpoint"), (method, path)
            else:
                assert status == 405, (method, path, status)
    for stray in ("/api/v1/room", "/api/v1/rooms/12/member", "/api/v1/users/a/b", "/api/v1"):
        assert (await api(server.port, stray))[0] == 404, stray
