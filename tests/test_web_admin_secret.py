"""The generated admin password: one file, mode 0600, the same for every process."""

from __future__ import annotations

import os
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from abconv.errors import AbconvError
from abconv.web.admin_secret import generated_password, password_file


def test_it_is_written_once_and_read_after(tmp_path: Path) -> None:
    folder = tmp_path / "instance" / "nested"
    first = generated_password(folder)
    path = password_file(folder)
    assert path == folder.resolve() / "admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == first + "\n" and len(first) >= 32
    assert generated_password(folder) == first
    assert os.listdir(folder) == ["admin-password"]  # no draft left behind


def test_workers_starting_together_agree(tmp_path: Path) -> None:
    start = threading.Barrier(16)

    def worker(_: int) -> str:
        start.wait()
        return generated_password(tmp_path)

    with ThreadPoolExecutor(16) as pool:
        passwords = set(pool.map(worker, range(16)))
    assert len(passwords) == 1
    assert os.listdir(tmp_path) == ["admin-password"]


def test_an_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    password_file(tmp_path).write_text("\n")
    with pytest.raises(AbconvError) as raised:
        generated_password(tmp_path)
    assert raised.value.code == "bad_config" and "admin-password" in raised.value.message
