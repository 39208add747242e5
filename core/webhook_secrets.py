"""Standard Webhooks secrets: ``whsec_`` followed by the base64 of 24 to 64 random bytes.

The HMAC key is always the decoded bytes. There is no other form: a secret that does not have
this shape is refused where it is configured (settings, endpoint rows), never reinterpreted,
so a sender and Vouch can never disagree about which bytes are the key.
"""

from __future__ import annotations

import base64
import binascii
import secrets

PREFIX = "whsec_"
MIN_BYTES = 24
MAX_BYTES = 64
GENERATE_COMMAND = (
    "python -c 'import base64, secrets; "
    'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\''
)


class InvalidSecret(ValueError):
    """The text is not a ``whsec_`` + base64 secret."""


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret, or ``InvalidSecret`` saying what is wrong with it."""
    if not secret.startswith(PREFIX):
        raise InvalidSecret(f"must start with {PREFIX} (Standard Webhooks format)")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(
            f"the part after {PREFIX} must be standard base64 (A-Z, a-z, 0-9, +, /, =)"
        ) from None
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise InvalidSecret(
            f"the part after {PREFIX} must decode to {MIN_BYTES} to {MAX_BYTES} bytes"
            f" (it decodes to {len(key)})"
        )
    return key
