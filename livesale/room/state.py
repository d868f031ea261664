"""The room's rules, pure: no I/O, no ``await``."""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# The room: line-up, featured item, explain requests, plants, chat, mutes, slow mode.
#
# These are the rules; the room scripts in ``livesale/lua`` apply the same rules atomically in
# Redis (where the room lives, shared by every process), and ``tests/room/test_state.py`` checks
# both against the same cases.
# ---------------------------------------------------------------------------------------------

#: Chat lines are 1–280 characters once trimmed.
CHAT_MAX = 280
#: Lines kept for the join snapshot.
CHAT_TAIL = 50
#: Chat rate limit per viewer: a bucket of ``CHAT_BURST`` refilled at ``CHAT_RATE`` per second.
CHAT_RATE = 1.0
CHAT_BURST = 3.0
#: A viewer's planted items are forgotten this long after their last plant (Redis expires the
#: set: a show runs hours, and a crowd of passing viewers must not stay in memory for good).
PLANTED_SECONDS = 12 * 3600


class Refused(Exception):
    """A room action refused by the rules; ``code`` is stable and goes to the client."""

    def __init__(self, code: str, detail: str = "", retry_ms: int = 0) -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code
        self.retry_ms = retry_ms


def clean_chat(text: str) -> str:
    """``text`` trimmed, if it is 1–280 characters; :class:`Refused` (``chat_empty``,
    ``chat_too_long``) otherwise."""
    text = text.strip()
    if not text:
        raise Refused("chat_empty", "say something")
    if len(text) > CHAT_MAX:
        raise Refused("chat_too_long", f"at most {CHAT_MAX} characters")
    return text


def rank(votes: dict[str, int], opened: dict[str, int]) -> list[tuple[str, int]]:
    """The request queue: most votes first, then the request opened first."""
    return sorted(votes.items(), key=lambda kv: (-kv[1], opened.get(kv[0], 0), kv[0]))


def take_token(
    tokens: float, at_ms: int, now_ms: int, rate: float = CHAT_RATE, burst: float = CHAT_BURST
) -> tuple[bool, float]:
    """Token bucket: whether one more line may go now, and the bucket's tokens after."""
    refilled = min(burst, tokens + max(0, now_ms - at_ms) * rate / 1000.0)
    if refilled < 1.0:
        return False, refilled
    return True, refilled - 1.0


@dataclass
class _Bucket:
    tokens: float = CHAT_BURST
    at_ms: int = 0
    last_ms: int = -(10**12)


@dataclass
class RoomState:
    """One show's room. Each method applies one action or raises :class:`Refused`; ``seq``
    counts the sequenced events the action produced (like the Redis counter)."""

    lineup: list[str] = field(default_factory=list)
    ended: bool = False
    featured: str | None = None
    seq: int = 0
    votes: dict[str, int] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    voters: dict[str, set[str]] = field(default_factory=dict)
    plants: dict[str, int] = field(default_factory=dict)
    planted: dict[str, set[str]] = field(default_factory=dict)
    chat: list[tuple[int, str, str]] = field(default_factory=list)  # (id, viewer id, text)
    mutes: dict[str, int] = field(default_factory=dict)
    slow_mode: int = 0
    buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _open(self) -> None:
        if self.ended:
            raise Refused("show_ended", "the show has ended")

    def _on_lineup(self, sku: str) -> None:
        if sku not in self.lineup:
            raise Refused("not_in_lineup", f"{sku} is not on the line-up")

    def queue(self) -> list[tuple[str, int]]:
        return rank(self.votes, self.opened)

    def _drop_request(self, sku: str) -> bool:
        if sku not in self.votes:
            return False
        del self.votes[sku], self.opened[sku]
        self.voters.pop(sku, None)
        return True

    def feature(self, sku: str | None) -> None:
        """Feature ``sku`` (``None``: unfeature); featuring resolves the item's request."""
        self._open()
        if sku is not None:
            self._on_lineup(sku)
        self.featured = sku
        self.seq += 1
        if sku is not None and self._drop_request(sku):
            self.seq += 1

    def request(self, viewer_id: str, sku: str, vote: bool = False) -> None:
        """Open a request for ``sku`` or add this viewer's vote to the open one; one vote per
        viewer per open request. ``vote=True`` refuses when nothing is open (``not_requested``)."""
        self._open()
        self._on_lineup(sku)
        if vote and sku not in self.votes:
            raise Refused("not_requested", f"nobody asked for {sku}; send a request")
        voters = self.voters.setdefault(sku, set())
        if viewer_id in voters:
            raise Refused("already_voted", f"you already asked for {sku}")
        voters.add(viewer_id)
        self.seq += 1
        if sku in self.votes:
            self.votes[sku] += 1
        else:
            self.votes[sku] = 1
            self.opened[sku] = self.seq

    def resolve(self, sku: str) -> None:
        """Close the open request for ``sku``; ``not_requested`` if there is none."""
        if not self._drop_request(sku):
            raise Refused("not_requested", f"no open request for {sku}")
        self.seq += 1

    def plant(self, viewer_id: str, sku: str, want: bool) -> int:
        """Add or remove ``sku`` on the viewer's list; the item's plant count after."""
        self._open()
        self._on_lineup(sku)
        mine = self.planted.setdefault(viewer_id, set())
        if want and sku not in mine:
            mine.add(sku)
            self.plants[sku] = self.plants.get(sku, 0) + 1
        elif not want and sku in mine:
            mine.discard(sku)
            self.plants[sku] -= 1
        return self.plants.get(sku, 0)

    def say(self, viewer_id: str, text: str, now_ms: int, host: bool = False) -> int:
        """Add a chat line (already :func:`clean_chat`-ed) and return its id. Viewers are
        refused while muted (``muted``), inside slow mode (``slow_mode``) or over the rate
        limit (``rate_limited``); the host never is."""
        self._open()
        if not host:
            until = self.mutes.get(viewer_id, 0)
            if until > now_ms:
                raise Refused("muted", "the host muted you", until - now_ms)
            bucket = self.buckets.setdefault(viewer_id, _Bucket(at_ms=now_ms))
            wait = bucket.last_ms + self.slow_mode * 1000 - now_ms
            if self.slow_mode and wait > 0:
                raise Refused("slow_mode", f"slow mode: one line every {self.slow_mode} s", wait)
            ok, tokens = take_token(bucket.tokens, bucket.at_ms, now_ms)
            if not ok:
                raise Refused("rate_limited", "slow down", int((1 - tokens) * 1000 / CHAT_RATE))
            bucket.tokens, bucket.at_ms, bucket.last_ms = tokens, now_ms, now_ms
        self.seq += 1
        self.chat.append((self.seq, viewer_id, text))
        del self.chat[:-CHAT_TAIL]
        return self.seq

    def delete_chat(self, line_id: int) -> None:
        """Remove line ``line_id`` for everyone; ``not_found`` for an id never said."""
        if line_id > self.seq or line_id < 1:
            raise Refused("not_found", f"no chat line {line_id}")
        self.chat = [line for line in self.chat if line[0] != line_id]
        self.seq += 1

    def mute(self, viewer_id: str, seconds: int, now_ms: int) -> int:
        """Mute ``viewer_id`` for ``seconds`` (0 lifts it); the muted-until time in ms."""
        if seconds == 0:
            self.mutes.pop(viewer_id, None)
            return 0
        self.mutes[viewer_id] = now_ms + seconds * 1000
        return self.mutes[viewer_id]

    def set_slow_mode(self, seconds: int) -> None:
        self.slow_mode = seconds
        self.seq += 1
