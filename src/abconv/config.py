"""Settings parsed once from the environment (an injectable mapping)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from abconv.errors import AbconvError

DEFAULT_EXPERIMENTS_DIR = "experiments"
DEFAULT_INSTANCE_DIR = "instance"
MAX_TRUSTED_PROXIES = 10


@dataclass(frozen=True)
class Settings:
    database_url: str
    experiments_dir: Path
    secret_key: str | None  # None: a generated one, in instance_dir (signs the login cookie)
    admin_password: str | None  # None: a generated one, in instance_dir, and loopback only
    allowed_origins: tuple[str, ...]
    instance_dir: Path  # the generated admin password and the default SQLite database
    trusted_proxies: int  # proxy hops whose X-Forwarded-* headers are believed; 0: none


def load_config(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every ``ABCONV_*`` variable; raise :class:`AbconvError` naming a bad one.

    Relative paths are taken from the current directory, the folder the
    server is started in.
    """
    env = os.environ if environ is None else environ
    instance_dir = Path(env.get("ABCONV_INSTANCE_DIR", "") or DEFAULT_INSTANCE_DIR)
    database_url = env.get("ABCONV_DATABASE_URL", "").strip() or _default_sqlite_url(instance_dir)
    if not database_url.startswith(("sqlite:", "postgresql:", "postgresql+", "postgres:")):
        raise AbconvError(
            "bad_config",
            f"ABCONV_DATABASE_URL must be a sqlite:/// or postgresql:// URL, got {database_url!r}",
        )
    return Settings(
        database_url=database_url,
        experiments_dir=Path(env.get("ABCONV_EXPERIMENTS_DIR", "") or DEFAULT_EXPERIMENTS_DIR),
        secret_key=env.get("ABCONV_SECRET_KEY") or None,
        admin_password=env.get("ABCONV_ADMIN_PASSWORD") or None,
        allowed_origins=_parse_origins(env.get("ABCONV_ALLOWED_ORIGINS", "")),
        instance_dir=instance_dir,
        trusted_proxies=_parse_proxies(env.get("ABCONV_TRUSTED_PROXIES", "")),
    )


def _default_sqlite_url(instance_dir: Path) -> str:
    return f"sqlite:///{instance_dir.resolve() / 'abconv.sqlite3'}"


def _parse_proxies(raw: str) -> int:
    """How many proxies in front of the server append to ``X-Forwarded-For``.

    A count, not a list of addresses: werkzeug's ``ProxyFix`` believes the
    last N entries, which is right whatever addresses the proxies have.
    """
    text = raw.strip() or "0"
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_TRUSTED_PROXIES:
        raise AbconvError(
            "bad_config",
            f"ABCONV_TRUSTED_PROXIES must be a whole number of proxy hops from 0 to "
            f"{MAX_TRUSTED_PROXIES}, got {raw!r}",
        )
    return int(text)


def _parse_origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise AbconvError(
                "bad_config",
                "ABCONV_ALLOWED_ORIGINS must list origins such as https://shop.example.com "
                f"(comma-separated) or *, got {origin!r}",
            )
    return origins
