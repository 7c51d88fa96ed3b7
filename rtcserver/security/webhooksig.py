"""Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com/).

A receiver checks `webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`
with the shared secret, given as `whsec_<base64 key>`; `webhook-id` is the event's
idempotency key (the same on every retry) and `webhook-timestamp` (Unix seconds) lets
it refuse replays. Pure: no clock, no I/O. The HMAC is the standard library's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Final

SECRET_PREFIX: Final = "whsec_"
MIN_KEY_BYTES: Final = 24  # the scheme's guidance: 24 to 64 random bytes


def parse_secret(text: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret; ValueError naming what is wrong."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret is {SECRET_PREFIX}<base64 of 24-64 random bytes>")
    try:
        key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("the webhook secret after whsec_ is not base64") from None
    if not MIN_KEY_BYTES <= len(key) <= 64:
        raise ValueError(f"the webhook secret must hold 24-64 bytes, not {len(key)}")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one signed delivery (and its content type)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
        "content-type": "application/json",
    }
