"""Settings parsed once from the environment (an injectable mapping)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from abconv.errors import AbconvError

DEFAULT_EXPERIMENTS_DIR = "experiments"
DEFAULT_INSTANCE_DIR = "instance"


@dataclass(frozen=True)
class Settings:
    database_url: str
    experiments_dir: Path
    secret_key: str
    admin_password: str | None
    allowed_origins: tuple[str, ...]


def load_config(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every ``ABCONV_*`` variable; raise :class:`AbconvError` naming a bad one.

    Relative paths are taken from the current directory, the folder the
    server is started in.
    """
    env = os.environ if environ is None else environ
    database_url = env.get("ABCONV_DATABASE_URL", "").strip() or _default_sqlite_url()
    if not database_url.startswith(("sqlite:", "postgresql:", "postgresql+", "postgres:")):
        raise AbconvError(
            "bad_config",
            f"ABCONV_DATABASE_URL must be a sqlite:/// or postgresql:// URL, got {database_url!r}",
        )
    return Settings(
        database_url=database_url,
        experiments_dir=Path(env.get("ABCONV_EXPERIMENTS_DIR", "") or DEFAULT_EXPERIMENTS_DIR),
        secret_key=env.get("ABCONV_SECRET_KEY", "") or secrets.token_hex(32),
        admin_password=env.get("ABCONV_ADMIN_PASSWORD") or None,
        allowed_origins=_parse_origins(env.get("ABCONV_ALLOWED_ORIGINS", "")),
    )


def _default_sqlite_url() -> str:
    return f"sqlite:///{Path(DEFAULT_INSTANCE_DIR).resolve() / 'abconv.sqlite3'}"


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
