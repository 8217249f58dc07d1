"""The admin password abconv makes up when ``ABCONV_ADMIN_PASSWORD`` is not set.

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


def password_file(instance_dir: Path) -> Path:
    return instance_dir.resolve() / PASSWORD_FILE


def generated_password(instance_dir: Path) -> str:
    """The password stored in ``instance_dir``, written first if there is none.

    The file appears whole or not at all: the password is written to a
    private temporary file (``O_CREAT | O_EXCL``, mode 0600) that is then
    hard-linked to its final name, which fails when another process got
    there first. Either way every process then reads the one file that won.
    """
    path = password_file(instance_dir)
    if not path.exists():
        _publish(path, secrets.token_urlsafe(24))
    try:
        password = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise AbconvError(
            "bad_config", f"cannot read the admin password in {path}: {error}"
        ) from error
    if not password:
        raise AbconvError("bad_config", f"the admin password file {path} is empty")
    return password


def _publish(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{PASSWORD_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(password + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process published first: its password is the one
    finally:
        draft.unlink(missing_ok=True)
