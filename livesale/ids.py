"""Identifiers, secrets and signed tokens.

IDs are ``NewType``s over ``str`` so a show id is never passed where a SKU is expected.
API keys and host tokens are random and stored only as SHA-256 hashes; viewer tokens are signed
(HMAC-SHA256 with the server secret) so any process sharing the data directory can verify them
without a lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import NewType

import msgspec

from livesale.errors import Forbidden

ShowId = NewType("ShowId", str)
Sku = NewType("Sku", str)
OrderId = NewType("OrderId", str)
HoldId = NewType("HoldId", str)
ViewerId = NewType("ViewerId", str)

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
#: Every byte value to a letter of the alphabet: 256 is a multiple of 32, so each letter is
#: equally likely (no modulo bias). One ``translate`` instead of a ``secrets.choice`` per letter,
#: which costs ~30 us an id — a buy click makes one.
_BYTE_TO_LETTER = bytes(ord(_ALPHABET[b % 32]) for b in range(256))


def new_id(prefix: str, length: int = 12) -> str:
    """A random id such as ``sh_4k9x2m7qpa1c``: unguessable enough to appear in URLs."""
    return prefix + "_" + os.urandom(length).translate(_BYTE_TO_LETTER).decode()


def new_secret(prefix: str) -> str:
    """A credential (API key, host token): 256 bits of randomness with a readable prefix."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored in place of a credential."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ViewerClaims(msgspec.Struct, frozen=True):
    """What a viewer token asserts: who the viewer is and the nickname they chose."""

    vid: str
    nick: str
    iat: int


#: Verified viewer tokens remembered per process (a buy click verifies one).
VERIFIED_CACHE_SIZE = 65536


class TokenSigner:
    """Signs and verifies viewer tokens with the server secret shared through SQLite."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        # Token -> claims of tokens whose signature checked out. A token is immutable and never
        # expires, so a verified one stays valid; only exact, already verified strings hit.
        self._verified: dict[str, ViewerClaims] = {}

    def sign(self, claims: ViewerClaims) -> str:
        body = _b64(msgspec.json.encode(claims))
        mac = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return f"v1.{body}.{_b64(mac)}"

    def issue(self, nickname: str) -> tuple[ViewerId, str]:
        """A new viewer id and its token."""
        vid = ViewerId(new_id("vw"))
        return vid, self.sign(ViewerClaims(vid=vid, nick=nickname, iat=int(time.time())))

    def verify(self, token: str) -> ViewerClaims:
        """The claims of a genuine token; :class:`Forbidden` for anything else."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _check(self, token: str) -> ViewerClaims:
        try:
            version, body, mac = token.split(".")
            if version != "v1":
                raise ValueError(version)
            expected = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(mac)):
                raise ValueError("bad signature")
            return msgspec.json.decode(_unb64(body), type=ViewerClaims)
        except (ValueError, msgspec.DecodeError) as exc:
            raise Forbidden("invalid viewer token") from exc
