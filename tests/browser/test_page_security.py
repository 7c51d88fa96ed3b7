"""The pages run under the server's Content-Security-Policy, and the check notices.

Every browser test fails on a CSP violation or a console error (conftest.open_page).
This one shows that the policy is really enforced, so that check means something.
"""

from __future__ import annotations

import pytest

from tests.browser.callpage import UI_MS
from tests.browser.conftest import OpenPage

pytestmark = pytest.mark.browser


def test_the_policy_blocks_injected_inline_script_and_the_check_sees_it(
    open_page: OpenPage, site_url: str
) -> None:
    page = open_page(site_url + "/")
    page.share_link()  # the page works under the policy
    with page.page.expect_console_message(
        lambda message: "CSP violation" in message.text, timeout=UI_MS
    ):
        page.page.evaluate(
            """() => {
              const s = document.createElement('script');
              s.textContent = 'window.__injected = true;';
              document.head.appendChild(s);
            }"""
        )
    assert page.page.evaluate("() => window.__injected === undefined")
    assert page.csp_violations, page.console
    page.console.clear()  # seen and expected: the fixture's own check must not fail this test
