"""The room in Redis: every action is one Lua script (``livesale/lua``, built by
:mod:`livesale.lua.calls`) that applies a rule of :mod:`livesale.room.state`, numbers the event
and publishes it; snapshots are read in one ``MULTI`` so they match exactly one sequence
number."""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from livesale.errors import Banned
from livesale.events import encoder
from livesale.lua import ScriptCall, Scripts, calls
from livesale.room.messages import ChatDeleted, ChatLine, Muted, RequestEntry, SlowMode
from livesale.room.state import (
    CHAT_BURST,
    CHAT_RATE,
    CHAT_TAIL,
    PLANTED_SECONDS,
    Refused,
    rank,
)
from livesale.shows import ShowStore

_chat_line = msgspec.json.Decoder(ChatLine)
#: What a viewer reads for the refusals whose code alone says too little.
_DETAILS = {
    "address_limit": "enough viewers on your network already did that for this item",
}


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class RoomState(msgspec.Struct, frozen=True):
    """The Redis half of a snapshot, as of sequence number ``seq``."""

    seq: int
    featured: str | None
    slow_mode: int
    requests: list[RequestEntry]
    chat: list[ChatLine]
    planted: list[str]
    notifying: list[str]
    plants: dict[str, int]
    muted_until: int


class RoomBus:
    """Runs the room scripts for every show. Raises :class:`Refused` when a rule says no and
    :class:`StoreError` when Redis fails.

    ``client`` arguments are the caller's address (``""``: not counted): at most ``crowd``
    viewers of one address count in an item's votes and wants, and a mute or ban of a viewer
    binds the address it joined from too, so a newly minted token lifts neither.
    """

    def __init__(
        self, redis: aioredis.Redis, scripts: Scripts, shows: ShowStore, *, crowd: int = 0
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.shows = shows
        self.crowd = crowd

    async def _run(self, call: ScriptCall) -> Any:
        return await self.scripts.run(call)

    @staticmethod
    def _check(result: Any) -> None:
        code = _text(result)
        if code != "ok":
            raise Refused(code or "refused", _DETAILS.get(code or "", ""))

    async def feature(self, show_id: str, sku: str | None) -> None:
        """The host features ``sku`` (``None`` unfeatures) through the shows, which own the
        featured item; a refusal comes out as :class:`Refused`."""
        self._check(await self.shows.feature(show_id, sku))

    async def request(
        self, show_id: str, sku: str, viewer_id: str, vote: bool, client: str = ""
    ) -> None:
        """Open or upvote the request for ``sku``; everyone gets the ranked ``requests``."""
        call = calls.request(
            show_id=show_id,
            sku=sku,
            viewer_id=viewer_id,
            vote=vote,
            client=client,
            crowd=self.crowd,
        )
        self._check(await self._run(call))

    async def resolve(self, show_id: str, sku: str) -> None:
        self._check(await self._run(calls.resolve(show_id=show_id, sku=sku)))

    async def plant(
        self, show_id: str, sku: str, viewer_id: str, want: bool, client: str = ""
    ) -> int:
        """Plant or unplant; returns the item's count. Hosts get ``plants``, the viewer
        ``planted``."""
        code, count = await self._run(
            calls.plant(
                show_id=show_id,
                sku=sku,
                viewer_id=viewer_id,
                want=want,
                client=client,
                crowd=self.crowd,
                keep_ms=PLANTED_SECONDS * 1000,
            )
        )
        self._check(code)
        return int(count)

    async def chat(
        self, show_id: str, viewer_id: str, nick: str, text: str, host: bool, client: str = ""
    ) -> int:
        """Say ``text`` (already cleaned); returns the line id. Viewers are refused when muted,
        in slow mode or over the rate limit (``Refused.retry_ms`` says how long to wait)."""
        body = encoder.encode(ChatLine(viewer_id=viewer_id, nick=nick, text=text, host=host))
        code, value = await self._run(
            calls.chat(
                show_id=show_id,
                viewer_id=viewer_id,
                host=host,
                body=body,
                rate=CHAT_RATE,
                burst=CHAT_BURST,
                tail=CHAT_TAIL,
                client=client,
            )
        )
        code = _text(code)
        if code != "ok":
            raise Refused(code or "refused", retry_ms=int(value))
        return int(value)

    async def delete_chat(self, show_id: str, line_id: int) -> None:
        body = encoder.encode(ChatDeleted(id=line_id))
        self._check(await self._run(calls.delete_chat(show_id=show_id, line_id=line_id, body=body)))

    async def mute(self, show_id: str, viewer_id: str, seconds: int) -> int:
        """Mute (``seconds=0`` unmutes); the viewer gets ``muted``. Returns muted-until ms."""
        body = encoder.encode(Muted(until=0))[:-1] + b',"viewer_id":' + encoder.encode(viewer_id)
        call = calls.mute(show_id=show_id, viewer_id=viewer_id, seconds=seconds, body=body + b"}")
        return int(await self._run(call))

    async def notify(self, show_id: str, viewer_id: str, sku: str, on: bool) -> None:
        """Ask (or stop asking) to be told when ``sku`` is back in stock."""
        call = calls.notify(show_id=show_id, viewer_id=viewer_id, sku=sku, on=on)
        self._check(await self._run(call))

    async def ban(self, show_id: str, viewer_id: str, lift: bool = False) -> None:
        """Ban ``viewer_id`` and its address from the show (``lift``: let them back); a ban
        closes their sockets in every process and refuses them on rejoin and at the till."""
        await self._run(calls.ban(show_id=show_id, viewer_id=viewer_id, lift=lift))

    async def join(self, show_id: str, viewer_id: str, client: str, record: bool = True) -> None:
        """A viewer opens the room: :class:`~livesale.errors.Banned` when the viewer or its
        address is banned; else the address it joins from is recorded for moderation (unless
        ``record`` is false: a watcher, who can do nothing to moderate)."""
        call = calls.join(show_id=show_id, viewer_id=viewer_id, client=client, record=record)
        code = _text(await self._run(call))
        if code == "banned":
            raise Banned("the host removed you from this show")

    async def slow_mode(self, show_id: str, seconds: int) -> None:
        body = encoder.encode(SlowMode(seconds=seconds))
        self._check(await self._run(calls.slow_mode(show_id=show_id, seconds=seconds, body=body)))

    async def presence(self, show_id: str, process: str, count: int, ttl_ms: int) -> int:
        """Report this process's ``count`` (-1: only read) and return the show's total."""
        call = calls.presence(show_id=show_id, process=process, count=count, ttl_ms=ttl_ms)
        return int(await self._run(call))

    async def state(self, show_id: str, viewer_id: str, host: bool, client: str = "") -> RoomState:
        """The room as of one sequence number (one script)."""
        (
            seq,
            (featured, slow),
            votes,
            order,
            chat,
            planted,
            notifying,
            plants,
            muted,
        ) = await self._run(calls.room_state(show_id=show_id, viewer_id=viewer_id, client=client))
        votes_ = _pairs(votes)
        order_ = _pairs(order)
        return RoomState(
            seq=int(seq or 0),
            featured=_text(featured),
            slow_mode=int(slow or 0),
            requests=[RequestEntry(sku, n) for sku, n in rank(votes_, order_)],
            chat=[_chat_line.decode(line) for line in chat],
            planted=sorted(s.decode() for s in planted),
            notifying=sorted(s.decode() for s in notifying),
            plants={k: v for k, v in _pairs(plants).items() if v > 0} if host else {},
            muted_until=max(int(m or 0) for m in muted),
        )


def _pairs(flat: list[bytes]) -> dict[str, int]:
    """A hash read in Lua (``HGETALL``: field, value, ...) as a dict of counts."""
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
