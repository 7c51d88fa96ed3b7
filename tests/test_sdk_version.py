"""The SDK (www/sdk/rtcserver.js) states its version by hand: it must be the package's."""

from __future__ import annotations

import re
from pathlib import Path

import rtcserver

SDK = Path(__file__).resolve().parent.parent / "www" / "sdk" / "rtcserver.js"


def test_sdk_version_is_the_package_version() -> None:
    match = re.search(r'^const VERSION = "([^"]+)";$', SDK.read_text(), re.MULTILINE)
    assert match is not None, 'www/sdk/rtcserver.js must define const VERSION = "...";'
    assert match.group(1) == rtcserver.__version__
