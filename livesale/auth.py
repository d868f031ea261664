"""Who is calling: merchants (API keys), hosts (a show's host token) and viewers (signed tokens).

A missing credential is ``401``; a credential that is present but wrong, or of the wrong role,
is ``403``. Never a silent success.
"""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request

from livesale.db import Database, Row
from livesale.errors import Forbidden, NotFound, Unauthorized
from livesale.http import bearer_token
from livesale.ids import TokenSigner, ViewerClaims, hash_secret, new_id, new_secret

#: How long a verified API key is trusted without asking SQLite again (in one process; a key
#: revoked here stops at once, in other processes within this long).
_KEY_CACHE_SECONDS = 5.0
#: ``last_used_at`` is written at most this often per key: a key's use is news to the
#: merchant, a write per request on the sale's single writer is not.
_LAST_USED_SECONDS = 60.0


class KeyOut(msgspec.Struct, frozen=True):
    """A merchant API key as it is listed: never the key itself, which is shown once."""

    id: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class KeyCreated(msgspec.Struct, frozen=True):
    id: str
    label: str
    #: The key: shown in this answer only.
    key: str


def _key_out(row: Row) -> KeyOut:
    return KeyOut(
        id=row["id"],
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


class ApiKeys:
    """Merchant API keys, stored only as SHA-256 hashes; listed with their label and last use,
    and revoked (kept in the list, refused from then on)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[str, float]] = {}

    async def create(self, label: str) -> str:
        """Make a new key and return it; this is the only time it can be seen."""
        return (await self.make(label)).key

    async def make(self, label: str) -> KeyCreated:
        """Make a new key: its id, label and the key itself (seen this once only)."""
        key, key_id = new_secret("lsk"), new_id("key")
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO api_keys (id, hash, label, created_at) VALUES (?, ?, ?, ?)",
                (key_id, hash_secret(key), label, time.time()),
            )
        return KeyCreated(id=key_id, label=label, key=key)

    async def count(self) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) FROM api_keys")
        return int(row[0]) if row else 0

    async def list(self) -> list[KeyOut]:
        """Every key, oldest first, revoked ones included."""
        rows = await self.db.fetchall("SELECT * FROM api_keys ORDER BY created_at, id")
        return [_key_out(row) for row in rows]

    async def revoke(self, key_id: str) -> KeyOut:
        """Revoke a key: it is refused from now on (revoking it again changes nothing)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            cur = await conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        self._cache = {k: v for k, v in self._cache.items() if v[0] != key_id}
        return _key_out(row)

    async def verify(self, key: str) -> str:
        """The key's id, or :class:`Forbidden` for a key that does not exist or was revoked."""
        digest = hash_secret(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        row = await self.db.fetchone(
            "SELECT id, last_used_at, revoked_at FROM api_keys WHERE hash = ?", (digest,)
        )
        if row is None:
            raise Forbidden("unknown API key")
        if row["revoked_at"] is not None:
            raise Forbidden("this API key was revoked")
        self._cache[digest] = (row["id"], now + _KEY_CACHE_SECONDS)
        wall = time.time()
        if (row["last_used_at"] or 0) < wall - _LAST_USED_SECONDS:
            async with self.db.transaction() as conn:
                await conn.execute(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (wall, row["id"])
                )
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
