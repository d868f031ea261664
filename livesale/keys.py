"""Every Redis key livesale uses, built in one place.

Lua scripts never build keys: they receive them all in ``KEYS``. One SKU's keys share the hash
tag ``{sku}``, one show's keys the tag ``{show:<id>}``, and the few keys of the whole shop's
stock the tag ``{stock}``: every script's keys are of one hash slot, so a Redis Cluster runs
them (tests/test_keys.py checks every call builder). What must reach both a show and a SKU is
mirrored in the SKU's slot (:func:`offers`) or done in two steps (a buy click's ``admit`` in the
show's slot, then ``reserve`` in the SKU's). The one exception, ``click``, both steps in one
script, runs on a single Redis only (:data:`livesale.lua.SINGLE_REDIS`).
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = "ls:"

#: Set when stock has been built from the store of record; its absence after a Redis restart
#: means the data was lost and stock must be rebuilt. (Each SKU's counters carry a ``ready``
#: mark of their own too, which the hold scripts check in the SKU's slot: a cluster node that
#: lost its data loses the marks of its SKUs only.)
STOCK_READY = PREFIX + "{stock}:ready"
#: Held while one process rebuilds stock from SQLite.
REBUILD_LOCK = PREFIX + "{stock}:rebuild-lock"
#: Held by the one process that runs the duties that must not run twice (livesale.lease).
DUTIES = PREFIX + "duties"


def stock(sku: str) -> str:
    """Hash ``on_hand``, ``available``, ``held``, ``sold`` of one SKU, and ``ready`` once they
    were built from the store of record."""
    return f"{PREFIX}{{{sku}}}:stock"


def offers(sku: str) -> str:
    """Hash show id -> ``price|currency|limit|mode|until`` of every show that sells the SKU
    now (mode ``live`` or ``replay``; ``until``: ms when a replay's sales end, 0 for none): the
    show's mirror, kept in the SKU's slot for its buy clicks. An offer past its ``until`` sells
    nothing and goes with the next mirror of a show selling the SKU."""
    return f"{PREFIX}{{{sku}}}:offers"


def sku_channel(sku: str) -> str:
    """Pub/sub channel of the SKU's stock, hold and sale events (each names its show)."""
    return f"{PREFIX}{{{sku}}}:events"


#: The change of on-hand counts between its two steps (hash ``id``, ``until``): at most one
#: is open at a time.
STOCK_BATCH = PREFIX + "{stock}:batch"


def show(show_id: str) -> str:
    """Hash ``state``, ``paused`` of a show, mirrored from SQLite for the scripts."""
    return f"{PREFIX}{{show:{show_id}}}:state"


def lineup(show_id: str) -> str:
    """Hash SKU -> ``price|currency|limit`` of the show's line-up, mirrored from SQLite."""
    return f"{PREFIX}{{show:{show_id}}}:lineup"


def show_origin(show_id: str) -> str:
    """String ``wN``, or ``wN NODE-URL`` with ``--node-url``: the worker (and node) holding the
    show's publisher (``serve --workers``, several nodes); expires."""
    return f"{PREFIX}{{show:{show_id}}}:origin"


def show_relay(show_id: str, node: str) -> str:
    """String ``wN``: the worker of ``node`` (its ``--node-url``) that pulls the show from its
    origin node and relays it to that node's viewers; expires."""
    return f"{PREFIX}{{show:{show_id}}}:relay:{node}"


def node(tag: str) -> str:
    """String: the ``--node-url`` of the node whose session ids start with ``tag``; expires."""
    return f"{PREFIX}node:{tag}"


def show_channel(show_id: str) -> str:
    """Pub/sub channel of a show's room events."""
    return f"{PREFIX}{{show:{show_id}}}:events"


def show_seq(show_id: str) -> str:
    """Counter giving every room event of a show its sequence number."""
    return f"{PREFIX}{{show:{show_id}}}:seq"


#: Sorted set of the SKUs that may have holds, so the sweepers know where to look, each scored
#: by a time (ms) no hold made before it is written outlives (livesale.orders.holds).
HOLD_SKUS = PREFIX + "hold-index"


def holds(sku: str) -> str:
    """Hash hold id -> the hold record (JSON) of every recent hold of one SKU."""
    return f"{PREFIX}{{{sku}}}:holds"


def hold_expiry(sku: str) -> str:
    """Sorted set of one SKU's live hold ids, scored by expiry (Redis time, milliseconds)."""
    return f"{PREFIX}{{{sku}}}:expiry"


def holds_done(sku: str) -> str:
    """Sorted set of one SKU's finished hold ids, scored by when they ended (for pruning)."""
    return f"{PREFIX}{{{sku}}}:done"


def buyers(sku: str) -> str:
    """Hash ``<show>|<viewer>`` -> units held plus bought, for the per-buyer limit."""
    return f"{PREFIX}{{{sku}}}:buyers"


def returned(sku: str) -> str:
    """Hash order id -> units of that order already back in ``available`` (cancel, refund)."""
    return f"{PREFIX}{{{sku}}}:returned"


def idempotency(show_id: str, viewer_id: str, key: str) -> str:
    """A buy click's idempotency record, while its hold may live: ``<hold id>|<sku>|<qty>``."""
    return f"{PREFIX}{{show:{show_id}}}:idem:{viewer_id}:{key}"


def channel_pattern() -> str:
    """Pattern matching every show's and every SKU's channel: on one Redis, one subscription
    per process serves all rooms (a cluster subscribes to each room's channels instead)."""
    return f"{PREFIX}{{*}}:events"


def buy_bucket(show_id: str, client: str) -> str:
    """Token bucket of one client address's buy clicks in a show (expires when full)."""
    return f"{PREFIX}{{show:{show_id}}}:buy-rate:{client}"


def show_requests(show_id: str) -> str:
    """Hash SKU -> votes of the show's open explain requests."""
    return f"{PREFIX}{{show:{show_id}}}:requests"


def show_request_order(show_id: str) -> str:
    """Hash SKU -> the sequence number that opened the request (ties rank oldest first)."""
    return f"{PREFIX}{{show:{show_id}}}:request-order"


def show_voters(show_id: str, sku: str) -> str:
    """Set of viewer ids who asked for or voted on the open request for ``sku``."""
    return f"{PREFIX}{{show:{show_id}}}:voters:{sku}"


def show_plants(show_id: str) -> str:
    """Hash SKU -> how many viewers planted it (the host sees only these counts)."""
    return f"{PREFIX}{{show:{show_id}}}:plants"


def viewer_plants(show_id: str, viewer_id: str) -> str:
    """Set of the SKUs one viewer planted in a show: private to that viewer; it expires a
    while after the viewer's last plant (``livesale.room.state.PLANTED_SECONDS``)."""
    return f"{PREFIX}{{show:{show_id}}}:planted:{viewer_id}"


def show_chat(show_id: str) -> str:
    """List of the show's last chat lines (JSON), oldest first."""
    return f"{PREFIX}{{show:{show_id}}}:chat"


def show_mutes(show_id: str) -> str:
    """Hash viewer id, or ``@<address>``, -> muted-until (ms, Redis clock)."""
    return f"{PREFIX}{{show:{show_id}}}:mutes"


def chat_bucket(show_id: str, viewer_id: str) -> str:
    """Hash ``tokens``, ``at``, ``last`` of one viewer's chat rate limit (expires when idle)."""
    return f"{PREFIX}{{show:{show_id}}}:bucket:{viewer_id}"


def show_presence(show_id: str) -> str:
    """Hash process id -> ``viewers:expires_ms``: each process's viewer count, while it lives."""
    return f"{PREFIX}{{show:{show_id}}}:presence"


def show_keys(show_id: str, skus: Iterable[str]) -> list[str]:
    """Every key of a show that lives as long as the show, with the voters of ``skus``: what
    is given a lifetime once the show has closed. (Its viewers' own keys expire by
    themselves.)"""
    return [
        show(show_id),
        lineup(show_id),
        show_seq(show_id),
        show_requests(show_id),
        show_request_order(show_id),
        show_plants(show_id),
        show_chat(show_id),
        show_mutes(show_id),
        show_presence(show_id),
        show_clients(show_id),
        show_bans(show_id),
        show_plant_addresses(show_id),
        *(show_voters(show_id, sku) for sku in skus),
        *(show_voter_addresses(show_id, sku) for sku in skus),
    ]


def replay_keys(show_id: str) -> list[str]:
    """The keys of a show its replay's buy clicks read (its mirror, line-up and bans) and its
    room's event sequence: kept while the replay sells."""
    return [show(show_id), lineup(show_id), show_seq(show_id), show_bans(show_id)]


def rate(action: str, client: str) -> str:
    """Token bucket of one client address's rate limit on ``action`` (expires when full)."""
    return f"{PREFIX}{{rate:{client}}}:{action}"


#: How long a show's moderation and per-address room records outlive their last write: far
#: past any show's end, yet not forever (every key livesale writes has a bounded life).
ROOM_RECORD_SECONDS = 7 * 24 * 3600


def show_clients(show_id: str) -> str:
    """Hash viewer id -> the client address it last joined the room from (moderation binds a
    mute or ban to that address too)."""
    return f"{PREFIX}{{show:{show_id}}}:clients"


def show_bans(show_id: str) -> str:
    """Hash of who is banned from the show: viewer ids, and ``@<address>`` fields."""
    return f"{PREFIX}{{show:{show_id}}}:bans"


def show_voter_addresses(show_id: str, sku: str) -> str:
    """Hash address -> how many viewers of it asked for or voted on the open request for
    ``sku`` (dropped with the request)."""
    return f"{PREFIX}{{show:{show_id}}}:voter-addrs:{sku}"


def show_plant_addresses(show_id: str) -> str:
    """Hash ``<sku>|<address>`` -> how many viewers of that address planted the item."""
    return f"{PREFIX}{{show:{show_id}}}:plant-addrs"


def viewer_notify(show_id: str, viewer_id: str) -> str:
    """Set of the SKUs a viewer asked to be told about when they are back in stock."""
    return f"{PREFIX}{{show:{show_id}}}:notify:{viewer_id}"


def live_holds(show_id: str, who: str) -> str:
    """Sorted set of the live hold ids of a viewer (or of ``@<address>``) in a show, scored by
    expiry: the cap on holds at once across the show's items."""
    return f"{PREFIX}{{show:{show_id}}}:live:{who}"


def address_live_holds(show_id: str, address: str) -> str:
    """The :func:`live_holds` of every viewer of one client address in a show together."""
    return live_holds(show_id, "@" + address)
