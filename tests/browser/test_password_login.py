"""End to end: the pages on a server in password mode (`--users-file`).

config.json says `"auth":"password"`, so both pages ask for a name and password
and send AUTH before anything else; the phone then logs in with the same name.
A wrong password is explained and the form stays usable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rtcserver.security.passwords import ScryptParams, Users, hash_password, save_users
from tests.browser.conftest import OpenPage
from tests.browser.phonepage import PhonePage
from tests.support.process import ServerProcess, running_server

pytestmark = pytest.mark.browser

FAST = ScryptParams(n=16, r=8, p=1)  # test-only: cheap hashes
PASSWORDS = {"alice": "alice-pass-1", "bob": "bob-pass-2"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Overrides conftest's `server` for this module (site_url and open_page use it).
    users = Users()
    for name, password in PASSWORDS.items():
        users = users.with_password(name, hash_password(password, FAST))
    path: Path = tmp_path_factory.mktemp("users") / "users.txt"
    save_users(path, users)
    with running_server("--stun", "", "--users-file", str(path)) as srv:
        yield srv


def test_phone_asks_for_a_password_and_explains_a_wrong_one(
    open_page: OpenPage, site_url: str
) -> None:
    alice = PhonePage(open_page(site_url + "/phone.html"))
    alice.page.wait_for_selector("#login-password", state="visible")
    alice.submit_login("alice", "not-her-password")
    assert "Wrong name or password" in alice.login_error()
    alice.log_in("alice", PASSWORDS["alice"])
    bob = PhonePage(open_page(site_url + "/phone.html")).log_in("bob", PASSWORDS["bob"])
    alice.wait_user("bob")
    bob.wait_user("alice")


def test_room_page_signs_in_before_making_a_room(open_page: OpenPage, site_url: str) -> None:
    a = open_page(site_url + "/")
    a.page.wait_for_selector("#sign-in", state="visible")
    assert a.status() == "Sign in to continue"
    a.page.fill("#sign-in-name", "alice")
    a.page.fill("#sign-in-password", "wrong")
    a.page.click("#sign-in-submit")
    a.page.wait_for_function(
        "() => document.getElementById('sign-in-message').textContent.includes('Wrong')"
        " && !document.getElementById('sign-in').hidden"
    )
    a.page.fill("#sign-in-name", "alice")
    a.page.fill("#sign-in-password", PASSWORDS["alice"])
    a.page.click("#sign-in-submit")
    link = a.share_link()  # signed in: the room exists
    assert a.page.is_hidden("#sign-in")
    b = open_page(link)
    b.page.fill("#sign-in-name", "bob")
    b.page.fill("#sign-in-password", PASSWORDS["bob"])
    b.page.click("#sign-in-submit")
    a.wait_connected()
    b.wait_connected()
