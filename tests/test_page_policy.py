"""Which Content-Security-Policy a page gets: rtcserver's own pages the strict one,
pages of an operator's `--www DIR` the operator's `--csp` (none by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtcserver.wire.http import CONTENT_SECURITY_POLICY
from tests.conftest import StartServer
from tests.test_http import get, header_of, http_exchange, status_of

INLINE_PAGE = b"<!doctype html><script>document.title = 'ran'</script><p style='color:red'>x"


@pytest.fixture
def own_www(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(INLINE_PAGE)
    return root


async def policy_of(start_server: StartServer, path: str, **settings: object) -> str | None:
    server = await start_server(**settings)
    response = await http_exchange(server.port, get(path))
    assert status_of(response) == 200, response
    return header_of(response, "content-security-policy")


async def test_rtcserver_own_pages_keep_the_strict_policy(start_server: StartServer) -> None:
    assert await policy_of(start_server, "/index.html") == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    # Even when --csp is set: it is for the operator's pages only.
    policy = await policy_of(start_server, "/phone.html", csp="default-src *")
    assert policy == CONTENT_SECURITY_POLICY


async def test_pages_from_a_www_dir_get_no_policy_by_default(
    start_server: StartServer, own_www: Path
) -> None:
    assert await policy_of(start_server, "/index.html", www=own_www) is None


async def test_pages_from_a_www_dir_get_the_operators_policy(
    start_server: StartServer, own_www: Path
) -> None:
    policy = "default-src 'self'; script-src 'self' 'unsafe-inline'"
    assert await policy_of(start_server, "/", www=own_www, csp=policy) == policy


async def test_other_answers_keep_the_strict_policy(
    start_server: StartServer, own_www: Path
) -> None:
    assert await policy_of(start_server, "/healthz", www=own_www) == CONTENT_SECURITY_POLICY
