"""Secrets abconv makes up when they are not configured, kept in the instance folder.

``admin-password`` when ``ABCONV_ADMIN_PASSWORD`` is not set, and
``secret-key`` (which signs the login cookie) when ``ABCONV_SECRET_KEY`` is
not: every worker process must sign with the same key, or a person logged in
by one worker is a stranger to the next.

A proxy on the same machine that adds no forwarding header makes every
request look local, so "local" alone cannot guard the admin routes: a secret
is needed either way. Without a configured password, the first process to
need one writes a random one to ``INSTANCE_DIR/admin-password`` (mode 0600)
and every later process, and every worker starting at the same moment,
reads the same file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from abconv.errors import AbconvError

PASSWORD_FILE = "admin-password"
SECRET_KEY_FILE = "secret-key"


def password_file(instance_dir: Path) -> Path:
    return instance_dir.resolve() / PASSWORD_FILE


def generated_password(instance_dir: Path) -> str:
    """The admin password stored in ``instance_dir``, written first if there is none."""
    return generated_secret(password_file(instance_dir), "the admin password")


def generated_secret_key(instance_dir: Path) -> str:
    """The session-signing key stored in ``instance_dir``, written first if there is none."""
    return generated_secret(instance_dir.resolve() / SECRET_KEY_FILE, "the secret key")


def generated_secret(path: Path, what: str) -> str:
    """The secret stored at ``path``, written first if there is none.

    The file appears whole or not at all: the secret is written to a
    private temporary file (``O_CREAT | O_EXCL``, mode 0600) that is then
    hard-linked to its final name, which fails when another process got
    there first. Either way every process then reads the one file that won.
    """
    if not path.exists():
        _publish(path, secrets.token_urlsafe(24))
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise AbconvError("bad_config", f"cannot read {what} in {path}: {error}") from error
    if not secret:
        raise AbconvError("bad_config", f"the file of {what}, {path}, is empty")
    return secret


def _publish(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(secret + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process published first: its secret is the one
    finally:
        draft.unlink(missing_ok=True)
