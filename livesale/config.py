"""Settings: the one place that reads the environment.

Every ``livesale serve`` option also reads ``LIVESALE_<NAME>`` (click's ``auto_envvar_prefix``
in :mod:`livesale.cli`); this module turns the options into a frozen :class:`Settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("data")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How one livesale process runs. Immutable once the server starts."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = DEFAULT_DATA_DIR
    #: ``None`` means the embedded Redis on a unix socket under ``data_dir``.
    redis_url: str | None = None
    #: Public base URL printed in links; derived from host and port when empty.
    public_url: str = ""
    demo: bool = False
    #: How long a hold reserves stock before it returns to ``available``.
    hold_seconds: int = 300
    #: After a show ends, how long live holds may still check out.
    grace_seconds: int = 60
    #: Host addresses offered as ICE candidates (empty: every non-loopback interface).
    ice_hosts: tuple[str, ...] = ()
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = ""
    #: Largest request body accepted, in bytes (RFC 9110 §15.5.14: 413 above it).
    max_body_bytes: int = 1024 * 1024
    #: Extra origins allowed to open room WebSockets, besides the server's own.
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)

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
    def db_path(self) -> Path:
        return self.data_dir / "livesale.db"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None


def env(name: str, default: str | None = None) -> str | None:
    """Read ``LIVESALE_<NAME>``; the CLI uses this for the client-side settings."""
    return os.environ.get(f"LIVESALE_{name.upper()}", default)


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where no test of the main suite may skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
