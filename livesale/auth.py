"""Who is calling: merchants (API keys), hosts (a show's host token) and viewers (signed tokens).

A missing credential is ``401``; a credential that is present but wrong, or of the wrong role,
is ``403``. Never a silent success.
"""

from __future__ import annotations

import time

from starlette.requests import Request

from livesale.db import Database
from livesale.errors import Forbidden, Unauthorized
from livesale.http import bearer_token
from livesale.ids import TokenSigner, ViewerClaims, hash_secret, new_id, new_secret

#: How long a verified API key is trusted without asking SQLite again.
_KEY_CACHE_SECONDS = 5.0


class ApiKeys:
    """Merchant API keys, stored only as SHA-256 hashes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[str, float]] = {}

    async def create(self, label: str) -> str:
        """Make a new key and return it; this is the only time it can be seen."""
        key = new_secret("lsk")
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO api_keys (id, hash, label, created_at) VALUES (?, ?, ?, ?)",
                (new_id("key"), hash_secret(key), label, time.time()),
            )
        return key

    async def count(self) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) FROM api_keys")
        return int(row[0]) if row else 0

    async def verify(self, key: str) -> str:
        """The key's id, or :class:`Forbidden` for a key that does not exist."""
        digest = hash_secret(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        row = await self.db.fetchone("SELECT id FROM api_keys WHERE hash = ?", (digest,))
        if row is None:
            raise Forbidden("unknown API key")
        self._cache[digest] = (row["id"], now + _KEY_CACHE_SECONDS)
        return str(row["id"])

    async def merchant(self, request: Request) -> str:
        """The calling merchant's key id; 401 without a key, 403 with a wrong one."""
        token = bearer_token(request)
        if token is None:
            raise Unauthorized("this needs a merchant API key: Authorization: Bearer <key>")
        return await self.verify(token)


def viewer(request: Request, signer: TokenSigner) -> ViewerClaims:
    """The calling viewer's claims; 401 without a token, 403 with a forged one."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("this needs a viewer token from POST /api/viewers")
    return signer.verify(token)
