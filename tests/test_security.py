"""TLS, the Origin check, token and password authentication, TURN credentials handed out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import time
from pathlib import Path

import jwt
import orjson
import pytest
import trio
import trustme
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from rtcserver.security import passwords, tokens
from tests.conftest import StartServer
from tests.support.client import Client, connect

SECRET = "s" * 40
TURN_SECRET = "turn-shared-secret"


async def http_get(
    port: int, path: str, headers: str = "", tls: ssl.SSLContext | None = None
) -> bytes:
    stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname="localhost")
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode())
        data = b""
        with trio.fail_after(5):
            try:
                while chunk := await stream.receive_some(65536):
                    data += chunk
            except trio.BrokenResourceError:
                pass  # TLS peers may close without close_notify
    return data


def json_body(response: bytes) -> dict[str, object]:
    value = orjson.loads(response.split(b"\r\n\r\n", 1)[1])
    assert isinstance(value, dict)
    return value


# ------------------------------------------------------------------ TLS


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return cert, key


async def test_tls_serves_wss_and_https_to_clients_that_trust_the_ca(
    start_server: StartServer, ca: trustme.CA, cert_files: tuple[Path, Path]
) -> None:
    cert, key = cert_files
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    url = f"wss://localhost:{server.port}/ws"
    async with (
        open_websocket_url(url, ssl_context=trusting) as a,
        open_websocket_url(url, ssl_context=trusting) as b,
    ):
        client_a, client_b = Client(a), Client(b)
        room = await client_a.create_room()
        await client_b.send({"type": "ENTERROOM", "value": room})
        await client_a.expect("PEERJOINED")
        await client_b.send('{"type":"offer","sdp":"secure"}')
        assert await client_a.recv_text() == '{"type":"offer","sdp":"secure"}'
    response = await http_get(server.port, "/healthz", tls=trusting)
    assert response.startswith(b"HTTP/1.1 200")


async def test_tls_refuses_clients_that_do_not_trust_the_certificate(
    start_server: StartServer, cert_files: tuple[Path, Path]
) -> None:
    cert, key = cert_files
    server = await start_server(tls_cert=str(cert), tls_key=str(key))
    untrusting = ssl.create_default_context()  # system roots only: not the test CA
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    tls = trio.SSLStream(tcp, untrusting, server_hostname="localhost")
    with pytest.raises(trio.BrokenResourceError) as refused, trio.fail_after(5):
        await tls.do_handshake()
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    await tcp.aclose()
    # Plain text on the TLS port gets no page, and the server carries on.
    assert not (await http_get(server.port, "/healthz")).startswith(b"HTTP/1.1 200")


# ------------------------------------------------------------------ Origin


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:{port}", True),  # same origin
        ("http://LOCALHOST:{port}", True),
        ("https://app.example.org", True),  # on the allow-list
        ("https://evil.example", False),
        ("http://localhost:1", False),  # another port is another origin
        ("null", False),
        (None, True),  # no Origin: a tool or native app
    ],
)
async def test_origin_allow_list(
    start_server: StartServer, origin: str | None, allowed: bool
) -> None:
    server = await start_server(allowed_origins=("https://app.example.org",))
    headers = [] if origin is None else [("Origin", origin.format(port=server.port))]
    url = f"ws://localhost:{server.port}/ws"
    if allowed:
        async with connect(url, extra_headers=headers) as client:
            assert await client.create_room() > 0
    else:
        with pytest.raises(HandshakeError) as refused:
            async with connect(url, extra_headers=headers):
                pass
        assert getattr(refused.value, "status_code", None) == 403
        assert b"origin not allowed" in getattr(refused.value, "body", b"")


async def test_require_origin_refuses_clients_without_one(start_server: StartServer) -> None:
    server = await start_server(require_origin=True)
    with pytest.raises(HandshakeError):
        async with connect(f"ws://localhost:{server.port}/ws"):
            pass


# ------------------------------------------------------------------ tokens


def token(**claims: object) -> str:
    base: dict[str, object] = {"exp": int(time.time()) + 600}
    base.update(claims)
    return tokens.mint(SECRET, tokens.Claims(**base))  # type: ignore[arg-type]


async def test_valid_token_in_the_url_lets_the_client_in(start_server: StartServer) -> None:
    server = await start_server(auth_secret=SECRET)
    url = f"ws://127.0.0.1:{server.port}/ws?token={token(sub='alice')}"
    async with connect(url) as client:
        assert await client.create_room() > 0


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: token(exp=int(time.time()) - 5), "token-expired"),
        (lambda: tokens.mint("x" * 40, tokens.Claims(exp=int(time.time()) + 60)), "token-forged"),
        (lambda: "not.a.token", "token-malformed"),
        (lambda: "", "token-missing"),
    ],
)
async def test_bad_tokens_in_the_url_get_401(
    start_server: StartServer, make: object, code: str
) -> None:
    server = await start_server(auth_secret=SECRET)
    bad = make()  # type: ignore[operator]
    with pytest.raises(HandshakeError) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}/ws?token={bad}"):
            pass
    assert getattr(refused.value, "status_code", None) == 401
    body = getattr(refused.value, "body", b"")
    assert body.startswith(code.encode()) or code.encode() in body


async def test_token_in_a_first_auth_message(start_server: StartServer) -> None:
    server = await start_server(auth_secret=SECRET)
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send({"type": "AUTH", "token": token(sub="bob")})
        reply = await client.expect("AUTH")
        assert reply == {"type": "AUTH", "success": True, "name": "bob"}
        assert await client.create_room() > 0


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ('{"type":"GETROOM","value":""}', "auth-required"),
        ("garbage", "auth-required"),
        ('{"type":"AUTH"}', "token-missing"),
        ('{"type":"AUTH","token":"a.b.c"}', "token-malformed"),
    ],
)
async def test_nothing_is_processed_before_authentication(
    start_server: StartServer, first: str, code: str
) -> None:
    server = await start_server(auth_secret=SECRET)
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send(first)
        error = await client.expect("ERROR")
        assert error["code"] == code
        reason = await client.expect_close()
        assert reason.code == 1008
    assert server.state.registry.statistics().rooms == 0


async def test_silence_instead_of_auth_is_refused_after_the_handshake_timeout(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_secret=SECRET, handshake_timeout=0.5)
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        assert (await client.expect("ERROR"))["code"] == "auth-required"
        assert (await client.expect_close()).code == 1008


async def test_token_rooms_claim_limits_which_rooms_may_be_entered(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_secret=SECRET)
    base = f"ws://127.0.0.1:{server.port}/ws?token="
    async with connect(base + token(sub="host")) as host:
        room = await host.create_room()
        other = room + 1 if room < 2**53 - 1 else room - 1
        async with connect(base + token(sub="guest", rooms=[other])) as guest:
            await guest.send({"type": "ENTERROOM", "value": room})
            assert (await guest.expect("WRONGROOM"))["reason"] == "forbidden"
        async with connect(base + token(sub="invited", rooms=[room])) as invited:
            await invited.send({"type": "ENTERROOM", "value": room})
            await host.expect("PEERJOINED")


async def test_a_rooms_claim_forbids_getroom(start_server: StartServer) -> None:
    server = await start_server(auth_secret=SECRET)
    async with connect(f"ws://127.0.0.1:{server.port}/ws?token={token(rooms=[])}") as guest:
        await guest.send({"type": "GETROOM", "value": ""})
        assert (await guest.expect("ERROR"))["code"] == "forbidden"


async def test_a_rooms_claim_forbids_calls_which_make_new_rooms(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_secret=SECRET)
    base = f"ws://127.0.0.1:{server.port}/ws?token="
    async with (
        connect(base + token(sub="bob")) as bob,
        connect(base + token(sub="guest", rooms=[])) as guest,
    ):
        await bob.send({"type": "LOGIN", "name": "bob"})
        assert (await bob.expect("LOGIN"))["success"] is True
        await bob.directory_until(lambda d: d == {"bob": "available"})
        await guest.send({"type": "LOGIN", "name": "guest"})
        reply = await guest.expect("LOGIN")
        assert reply["success"] is False and reply["reason"].startswith("auth failed")
        await guest.send({"type": "CALL", "to": "bob"})
        assert (await guest.expect("ERROR"))["code"] == "not-logged-in"
        await bob.expect_nothing()


async def test_a_token_without_sub_may_use_rooms_but_not_login(start_server: StartServer) -> None:
    server = await start_server(auth_secret=SECRET)
    async with connect(f"ws://127.0.0.1:{server.port}/ws?token={token()}") as anonymous:
        await anonymous.send({"type": "LOGIN", "name": "alice"})
        reply = await anonymous.expect("LOGIN")
        assert reply["success"] is False and reply["reason"].startswith("auth failed")
        assert await anonymous.create_room() > 0


async def test_a_token_of_the_wrong_shape_gets_a_short_fixed_401(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_secret=SECRET)
    bad = jwt.encode({"exp": int(time.time()) + 60, "sub": 123}, SECRET, algorithm="HS256")
    with pytest.raises(HandshakeError) as refused:
        async with connect(f"ws://127.0.0.1:{server.port}/ws?token={bad}"):
            pass
    assert getattr(refused.value, "status_code", None) == 401
    assert getattr(refused.value, "body", b"") == b"token-claims-invalid: sub must be a string\n"


# ------------------------------------------------------------------ passwords


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    cheap = passwords.ScryptParams(2**10, 8, 1)  # fast for tests; the tool uses the default
    users = passwords.parse_users("").with_password(
        "carol", passwords.hash_password("correct horse", cheap)
    )
    passwords.save_users(path, users)
    assert "correct horse" not in path.read_text()
    return path


async def test_password_login_lets_the_user_in(start_server: StartServer, users_file: Path) -> None:
    server = await start_server(users_file=str(users_file))
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send({"type": "AUTH", "name": "carol", "password": "correct horse"})
        assert (await client.expect("AUTH"))["name"] == "carol"
        assert await client.create_room() > 0


@pytest.mark.parametrize(
    "credentials",
    [
        {"name": "carol", "password": "wrong"},
        {"name": "mallory", "password": "correct horse"},
        {"name": "carol"},
        {"name": 5, "password": []},
    ],
)
async def test_bad_passwords_get_auth_failed_and_close_1008(
    start_server: StartServer, users_file: Path, credentials: dict[str, object]
) -> None:
    server = await start_server(users_file=str(users_file))
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send({"type": "AUTH", **credentials})
        assert (await client.expect("ERROR"))["code"] == "auth-failed"
        assert (await client.expect_close()).code == 1008


async def test_repeated_login_failures_are_throttled(
    start_server: StartServer, users_file: Path
) -> None:
    server = await start_server(users_file=str(users_file))
    codes: list[str] = []
    for _ in range(8):
        async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            await client.send({"type": "AUTH", "name": "carol", "password": "guess"})
            codes.append(str((await client.expect("ERROR"))["code"]))
    assert codes[0] == "auth-failed"
    assert codes[-1] == "auth-throttled"
    # Even the right password is not checked while throttled.
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send({"type": "AUTH", "name": "carol", "password": "correct horse"})
        assert (await client.expect("ERROR"))["code"] == "auth-throttled"


# ------------------------------------------------------------------ TURN credentials


def turn_password(username: str) -> str:
    return base64.b64encode(
        hmac.new(TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()


async def test_config_json_hands_out_ephemeral_turn_credentials(start_server: StartServer) -> None:
    server = await start_server(
        stun=("stun:127.0.0.1:3478",),
        turn=("turn:127.0.0.1:3478?transport=udp",),
        turn_secret=TURN_SECRET,
        turn_ttl=600,
    )
    response = await http_get(server.port, "/config.json")
    assert TURN_SECRET.encode() not in response
    config = json_body(response)
    stun, turn = config["iceServers"]  # type: ignore[misc]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    expiry, _, user = turn["username"].partition(":")
    assert 590 <= int(expiry) - time.time() <= 601
    assert user
    assert turn["credential"] == turn_password(turn["username"])
    assert config["iceTransportPolicy"] == "all"
    assert config["auth"] is None


async def test_relay_only_option_is_passed_to_browsers(start_server: StartServer) -> None:
    server = await start_server(
        turn=("turn:127.0.0.1:3478",), turn_secret=TURN_SECRET, relay_only=True
    )
    assert json_body(await http_get(server.port, "/config.json"))["iceTransportPolicy"] == "relay"


async def test_with_auth_on_turn_credentials_go_only_to_authenticated_sockets(
    start_server: StartServer,
) -> None:
    server = await start_server(
        auth_secret=SECRET, turn=("turn:127.0.0.1:3478",), turn_secret=TURN_SECRET
    )
    public = json_body(await http_get(server.port, "/config.json"))
    assert public["iceServers"] == [] and public["auth"] == "token"
    async with connect(f"ws://127.0.0.1:{server.port}/ws?token={token(sub='dave')}") as client:
        await client.send({"type": "GETCONFIG"})
        config = await client.expect("CONFIG")
        (turn,) = config["iceServers"]
        assert turn["username"].endswith(":dave-" + turn["username"].rsplit("-", 1)[1])
        assert turn["credential"] == turn_password(turn["username"])


async def test_getconfig_works_without_auth_too(start_server: StartServer) -> None:
    server = await start_server(stun=("stun:127.0.0.1:1",))
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send({"type": "GETCONFIG"})
        config = await client.expect("CONFIG")
        assert config["iceServers"] == [{"urls": ["stun:127.0.0.1:1"]}]


def test_settings_refuse_turn_without_secret_and_short_auth_secrets() -> None:
    from rtcserver.config import validate
    from rtcserver.settings import Settings

    assert validate(Settings(turn=("turn:x:1",))) is not None
    assert validate(Settings(auth_secret="short")) is not None
    assert validate(Settings(tls_cert="/nonexistent.pem", tls_key="/nonexistent.pem"))
    assert validate(Settings(allowed_origins=("evil.example",))) is not None
    assert validate(Settings()) is None


async def test_closed_connection_is_not_an_error_for_refused_auth(
    start_server: StartServer,
) -> None:
    server = await start_server(auth_secret=SECRET)
    async with connect(f"ws://127.0.0.1:{server.port}/ws") as client:
        await client.send("{}")
        with pytest.raises(ConnectionClosed):
            for _ in range(3):
                await client.ws.get_message()
