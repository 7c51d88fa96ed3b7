"""The same port serves the page, the health check and plain-HTTP refusals."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from rtcserver.wire import static
from tests.conftest import StartServer
from tests.support.client import connect


async def http_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes; return the whole response."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(timeout):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return data


def get(path: str, method: str = "GET", extra: str = "") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def header_of(response: bytes, name: str) -> str | None:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def body_of(response: bytes) -> bytes:
    return response.split(b"\r\n\r\n", 1)[1]


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>rooms</title>")
    (root / "app.js").write_text("console.log(1)")
    (root / "style.css").write_text("body{}")
    (root / "js" / "lib.js").write_text("export {}")
    (root / "js" / "lib.d.ts").write_text("export {};")
    (root / "logo.svg").write_text("<svg/>")
    (root / ".secret").write_text("dotfile")
    (tmp_path / "outside.txt").write_text("never served")
    return root


async def test_root_and_room_links_serve_index_html(start_server: StartServer, www: Path) -> None:
    server = await start_server(www=www)
    for path in ("/", "/?room=123456789", "/index.html"):
        response = await http_exchange(server.port, get(path))
        assert status_of(response) == 200, path
        assert header_of(response, "content-type") == "text/html; charset=utf-8"
        assert body_of(response) == b"<!doctype html><title>rooms</title>"
        assert header_of(response, "referrer-policy") == "no-referrer"
        assert header_of(response, "x-content-type-options") == "nosniff"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/js/lib.js", "text/javascript; charset=utf-8"),
        ("/js/lib.d.ts", "text/plain; charset=utf-8"),  # the SDK's TypeScript declarations
        ("/logo.svg", "image/svg+xml"),
    ],
)
async def test_files_get_their_content_types(
    start_server: StartServer, www: Path, path: str, content_type: str
) -> None:
    server = await start_server(www=www)
    response = await http_exchange(server.port, get(path))
    assert status_of(response) == 200
    assert header_of(response, "content-type") == content_type
    assert int(header_of(response, "content-length") or -1) == len(body_of(response))


@pytest.mark.parametrize(
    "path",
    [
        "/missing.js",
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/js/../../outside.txt",
        "/js/%2E%2E/%2E%2E/outside.txt",
        "/.secret",
        "/..%2foutside.txt",
        "/%00index.html",
        "/..\\outside.txt",
    ],
)
async def test_missing_files_and_traversal_get_404(
    start_server: StartServer, www: Path, path: str
) -> None:
    server = await start_server(www=www)
    response = await http_exchange(server.port, get(path))
    assert status_of(response) == 404, response
    assert b"never served" not in response


def test_resolve_never_leaves_the_root(www: Path) -> None:
    assert static.resolve(www, "/") == (www / "index.html").resolve()
    assert static.resolve(www, "/js/lib.js") == (www / "js" / "lib.js").resolve()
    assert static.resolve(www, "/../outside.txt") is None
    assert static.resolve(www, "relative.txt") is None


async def test_head_sends_headers_without_a_body(start_server: StartServer, www: Path) -> None:
    server = await start_server(www=www)
    response = await http_exchange(server.port, get("/app.js", method="HEAD"))
    assert status_of(response) == 200
    assert header_of(response, "content-length") == str(len("console.log(1)"))
    assert body_of(response) == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_get_405_with_allow(
    start_server: StartServer, www: Path, method: str
) -> None:
    server = await start_server(www=www)
    response = await http_exchange(
        server.port, get("/", method=method, extra="Content-Length: 0\r\n")
    )
    assert status_of(response) == 405
    assert header_of(response, "allow") == "GET, HEAD"


async def test_healthz_reports_connections_and_rooms(start_server: StartServer) -> None:
    server = await start_server()
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with connect(url) as a, connect(url) as b:
        await a.create_room()
        await b.create_room()
        response = await http_exchange(server.port, get("/healthz"))
        assert status_of(response) == 200
        assert header_of(response, "content-type") == "application/json"
        assert orjson.loads(body_of(response)) == {"status": "ok", "connections": 2, "rooms": 2}


async def test_config_hands_out_the_configured_ice_servers(start_server: StartServer) -> None:
    server = await start_server(stun=("stun:stun.example.org:3478", "stun:127.0.0.1:3478"))
    config = orjson.loads(body_of(await http_exchange(server.port, get("/config.json"))))
    assert config["iceServers"] == [{"urls": ["stun:stun.example.org:3478", "stun:127.0.0.1:3478"]}]
    assert config["iceTransportPolicy"] == "all"


async def test_config_with_no_stun_servers_is_empty(start_server: StartServer) -> None:
    server = await start_server(stun=())
    config = orjson.loads(body_of(await http_exchange(server.port, get("/config.json"))))
    assert config["iceServers"] == []


async def test_config_says_what_capacity_a_new_room_gets(start_server: StartServer) -> None:
    for capacity in (2, 4):
        server = await start_server(room_capacity=capacity)
        config = orjson.loads(body_of(await http_exchange(server.port, get("/config.json"))))
        assert config["roomCapacity"] == capacity


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost localhost\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
    ],
)
async def test_garbage_http_gets_400_naming_the_problem(
    start_server: StartServer, garbage: bytes
) -> None:
    server = await start_server()
    response = await http_exchange(server.port, garbage)
    assert status_of(response) in (400, 505)
    assert b"malformed HTTP request" in body_of(response)
    # ...and the server carries on.
    assert status_of(await http_exchange(server.port, get("/healthz"))) == 200


async def test_oversized_request_head_is_refused(start_server: StartServer) -> None:
    server = await start_server()
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    response = await http_exchange(server.port, request)
    assert status_of(response) == 431


async def test_slow_request_head_gets_408_after_the_handshake_timeout(
    start_server: StartServer,
) -> None:
    server = await start_server(handshake_timeout=0.5)
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\n")  # ...and never the rest
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                data += chunk
    assert status_of(data) == 408


async def test_connections_over_the_limit_get_503(start_server: StartServer) -> None:
    server = await start_server(max_connections=2)
    url = f"ws://127.0.0.1:{server.port}/ws"
    async with connect(url) as a, connect(url) as b:
        await a.create_room()
        await b.create_room()
        response = await http_exchange(server.port, get("/healthz"))
        assert status_of(response) == 503
        assert b"too many connections" in body_of(response)
    # Once they close, there is room again.
    with trio.fail_after(5):
        while server.state.connections:
            await server.state.idle.wait()
    assert status_of(await http_exchange(server.port, get("/healthz"))) == 200


async def test_websocket_upgrade_works_on_any_path(start_server: StartServer) -> None:
    server = await start_server()
    for path in ("/", "/ws", "/websocket"):
        async with connect(f"ws://127.0.0.1:{server.port}{path}") as client:
            assert await client.create_room() > 0


UPGRADE = (
    "GET /ws HTTP/{version}\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def test_frames_sent_right_behind_the_upgrade_request_are_read(
    start_server: StartServer,
) -> None:
    """A client may pipeline its first message behind the request head, before the 101."""
    server = await start_server()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(
            UPGRADE.format(version="1.1").encode() + masked_text_frame('{"type":"GETROOM"}')
        )
        received = b""
        with trio.fail_after(5):
            while b'"GETROOM"' not in received:
                received += await stream.receive_some(4096)
        assert received.startswith(b"HTTP/1.1 101 ")
        assert b'{"type":"GETROOM","value":' in received


async def test_an_upgrade_over_http_1_0_gets_505(start_server: StartServer) -> None:
    server = await start_server()
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(UPGRADE.format(version="1.0").encode())
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 505 "), received[:100]
    assert server.supervisor.crashes["connection"] == 0
