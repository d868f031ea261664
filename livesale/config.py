"""Settings: the one place that reads the environment.

Every ``livesale serve`` option also reads ``LIVESALE_<NAME>`` (click's ``auto_envvar_prefix``
in :mod:`livesale.cli`); this module turns the options into a frozen :class:`Settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from livesale.transport import (
    BODY_SECONDS,
    MAX_CONNECTIONS_PER_ADDRESS,
    MAX_HEADER_BYTES,
    EdgeLimits,
)

DEFAULT_DATA_DIR = Path("data")

#: Every payment provider livesale has; the merchant picks which the server accepts.
PROVIDERS = ("stripe", "manual", "test")
#: What a server accepts with no ``--payments``: pay on delivery or by transfer, marked by hand.
DEFAULT_PAYMENTS = ("manual",)
#: WHEP sessions one client address may hold at once: far above the players behind one shop's
#: shared Wi-Fi (one NAT address), far below what exhausts the relay's sockets.
DEFAULT_WHEP_SESSIONS_PER_ADDRESS = 100
STRIPE_API_BASE = "https://api.stripe.com"
STRIPE_JS_URL = "https://js.stripe.com/v3/"

#: Rate limits per client address: action -> (burst, seconds to refill the whole burst). A
#: person never comes near them; a shop's Wi-Fi or a carrier's NAT shares one address, so each
#: allows a crowd's worth. ``--rate-limit ACTION=BURST/SECONDS`` changes one.
RATE_LIMITS: dict[str, tuple[int, float]] = {
    "signup": (60, 60.0),  # viewer tokens
    "hold": (60, 10.0),  # buy clicks
    "checkout": (30, 10.0),
    "join": (120, 60.0),  # room sockets opened
    "chat": (30, 10.0),  # chat lines, every viewer of the address together
    "offer": (60, 60.0),  # WHIP and WHEP offers (each costs the relay a socket and ICE work)
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How one livesale process runs. Immutable once the server starts."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = DEFAULT_DATA_DIR
    #: ``None`` means the embedded Redis on a unix socket under ``data_dir``.
    redis_url: str | None = None
    #: The store of record: empty for the SQLite file under ``data_dir``, ``sqlite:///PATH``
    #: or ``postgresql://...`` (never printed or logged: it may carry a password).
    database_url: str = field(default="", repr=False)
    #: Public base URL printed in links; derived from host and port when empty.
    public_url: str = ""
    demo: bool = False
    #: How long a hold reserves stock before it returns to ``available``.
    hold_seconds: int = 300
    #: After a show ends, how long live holds may still check out.
    grace_seconds: int = 60
    #: How long orders taken on a show's replay wait before they are packed in a batch.
    replay_batch_hours: float = 24.0
    #: Host addresses offered as ICE candidates (empty: every non-loopback interface).
    ice_hosts: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = field(default="", repr=False)
    #: Server processes on the port (SO_REUSEPORT), each with its own relay (``serve
    #: --workers``); they share the Redis and the data store.
    workers: int = 1
    #: This process's index among the workers (0 with one process).
    worker: int = 0
    #: What a worker shows another when it forwards a show's WHIP or WHEP request to it (set
    #: by the supervisor for one run; empty with one process).
    worker_secret: str = field(default="", repr=False)
    #: This node's own origin as the other nodes of a shop reach it, not the balancer's
    #: (``serve --node-url``): a show's origin record names it, and a node asked for a show
    #: held by another pulls the show from there over WHEP. Empty: a node alone.
    node_url: str = ""
    #: Record every show as HLS (H.264 and Opus as the host sent them, no re-encoding).
    record: bool = True
    #: Where recordings go (``None``: ``<data_dir>/media``), one directory per show.
    media_dir: Path | None = None
    #: Recordings untouched for longer than this many days are deleted (``0``: kept forever).
    keep_recordings: int = 30
    #: WHEP sessions one client address may hold at once (``429`` over it).
    whep_sessions_per_address: int = DEFAULT_WHEP_SESSIONS_PER_ADDRESS
    #: WebRTC players this process relays to at once (``0``: no cap); past it WHEP answers
    #: ``503`` and the watch page plays the show's HLS, which any HTTP cache or CDN can carry.
    max_webrtc_viewers: int = 0
    #: Largest request body accepted, in bytes (RFC 9110 §15.5.14: 413 above it).
    max_body_bytes: int = 1024 * 1024
    #: Largest request line and headers, in bytes (RFC 6585 §5: 431 above it).
    max_header_bytes: int = MAX_HEADER_BYTES
    #: Seconds a request body may take to arrive after its headers (RFC 9110 §15.5.9: 408).
    body_timeout: float = BODY_SECONDS
    #: Open HTTP and WebSocket connections one client address may hold (429 past it).
    max_connections_per_address: int = MAX_CONNECTIONS_PER_ADDRESS
    #: Extra origins allowed to open room WebSockets, besides the server's own.
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    #: Proxies whose ``Forwarded`` / ``X-Forwarded-For`` name the client (CIDRs).
    trust_proxy: tuple[str, ...] = ()
    #: Overrides of :data:`RATE_LIMITS`: ``(action, burst, seconds)``.
    rate_limits: tuple[tuple[str, int, float], ...] = ()
    #: The per-buyer limit of a line-up item that sets none (0: none at all).
    default_limit_per_buyer: int = 5
    #: One client address may hold and buy this many times the per-buyer limit of an item.
    address_cap_multiple: int = 10
    #: The most units one buy click may hold.
    max_qty_per_click: int = 10
    #: Holds one viewer may have live at once across a show's items (0: no cap); an address
    #: may have ``address_cap_multiple`` times as many.
    live_holds_per_viewer: int = 10
    #: Viewers of one client address that count in a show's presence, and that may ask for,
    #: vote on or want one item: far above one shop's Wi-Fi, far below a script's tokens.
    crowd_per_address: int = 50
    #: The payment providers checkouts may name (``--payments``); ``test`` only when named, or
    #: with ``demo`` (see :attr:`providers`).
    payments: tuple[str, ...] = DEFAULT_PAYMENTS
    #: Stripe's keys (secret ones never printed, logged or served) and where Stripe is.
    stripe_secret_key: str = field(default="", repr=False)
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_api_base: str = STRIPE_API_BASE
    stripe_js_url: str = STRIPE_JS_URL
    # Browser and outbound edges
    #: The origins this server is reached at (``--public-origin``): requests must name one of
    #: their hosts (DNS rebinding), pages' sockets come from them. Empty: ``public_url``'s, or
    #: ``host``/``port`` and the loopback names (:mod:`livesale.origins`).
    public_origins: tuple[str, ...] = ()
    #: Origins whose pages may frame livesale's pages (CSP ``frame-ancestors``); empty: none.
    allow_embed: tuple[str, ...] = ()
    #: The merchant's webhook may be plain http (otherwise https only).
    allow_insecure_webhooks: bool = False
    #: The merchant's webhook may reach loopback, private, link-local and other non-global
    #: addresses (otherwise it may not, checked again on every delivery).
    allow_private_webhooks: bool = False
    #: ``/metrics`` answers only ``Authorization: Bearer <metrics_token>``; empty: anyone.
    metrics_token: str = field(default="", repr=False)
    # Memory and bulk edits
    #: Products one import may carry, all or nothing (``422`` past it); the CLI asks for it.
    max_import_rows: int = 5000
    #: Items a show's line-up may hold (``422`` past it): every viewer's snapshot carries it.
    max_lineup_items: int = 200
    #: How long a finished hold (released, expired, bought) stays readable in Redis. A buy
    #: click's idempotency record lives as long as its hold may: the longer of this and
    #: ``hold_seconds``, so a retried click gets the same hold.
    keep_finished_seconds: int = 600
    #: How long a show's room keys in Redis (chat tail, requests, plants, the mirror the buy
    #: script reads, ...) outlive its closing.
    show_keep_seconds: int = 3600
    #: The embedded Redis's ``maxmemory`` (Redis's units; ``0``: no limit), with the policy
    #: ``noeviction``. 256 MB holds a 100,000-product catalogue and hundreds of thousands of
    #: holds besides, and leaves a small machine room for the server, SQLite's cache and the
    #: fork of an append-only file rewrite. A ``--redis-url`` Redis keeps its own settings.
    redis_maxmemory: str = "256mb"

    def rate(self, action: str) -> tuple[int, float]:
        """``(burst, seconds)`` of the rate limit on ``action``."""
        for name, burst, seconds in self.rate_limits:
            if name == action:
                return burst, seconds
        return RATE_LIMITS[action]

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers this server accepts: ``payments``, plus ``test`` with ``demo``."""
        if self.demo and "test" not in self.payments:
            return (*self.payments, "test")
        return self.payments

    @property
    def test_payments(self) -> bool:
        """True when the test provider is on: pages show a banner, orders carry ``test``."""
        return "test" in self.providers

    def payment_problems(self) -> list[str]:
        """What keeps these payment settings from working (empty when they are sound)."""
        problems = [
            f"unknown payment provider {name!r} (choose from {', '.join(PROVIDERS)})"
            for name in self.payments
            if name not in PROVIDERS
        ]
        if not self.providers:
            problems.append("no payment provider is enabled (--payments)")
        if "stripe" in self.providers:
            for option, value in (
                ("--stripe-secret-key", self.stripe_secret_key),
                ("--stripe-publishable-key", self.stripe_publishable_key),
                ("--stripe-webhook-secret", self.stripe_webhook_secret),
            ):
                if not value:
                    problems.append(f"the stripe provider needs {option}")
            if self.stripe_secret_key and not self.stripe_secret_key.startswith(("sk_", "rk_")):
                problems.append("--stripe-secret-key must be a secret (sk_) or restricted key")
            if self.stripe_publishable_key and not self.stripe_publishable_key.startswith("pk_"):
                problems.append("--stripe-publishable-key must start with pk_")
        return problems

    @property
    def edge(self) -> EdgeLimits:
        """What the server's protocols hold every connection to."""
        return EdgeLimits(
            max_header_bytes=self.max_header_bytes,
            body_seconds=self.body_timeout,
            max_connections_per_address=self.max_connections_per_address,
        )

    @property
    def base_url(self) -> str:
        """The URL a person opens; ``public_url`` when set, else ``http://host:port``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def recordings_dir(self) -> Path:
        """The directory of every show's recording (``media_dir``, or under ``data_dir``)."""
        return self.media_dir if self.media_dir is not None else self.data_dir / "media"

    @property
    def run_dir(self) -> Path:
        """Where the workers' own sockets are (``worker-N.sock``: forwarded signalling)."""
        return self.data_dir / "run"

    def worker_socket(self, index: int) -> Path:
        return self.run_dir / f"worker-{index}.sock"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "livesale.db"

    @property
    def database(self) -> Path | str:
        """What :func:`livesale.db.open_database` opens: ``database_url``, else the SQLite file
        under ``data_dir``."""
        return self.database_url or self.db_path

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None


def env(name: str, default: str | None = None) -> str | None:
    """Read ``LIVESALE_<NAME>``; the CLI uses this for the client-side settings."""
    return os.environ.get(f"LIVESALE_{name.upper()}", default)


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where no test of the main suite may skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
