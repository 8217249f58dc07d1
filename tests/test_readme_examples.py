"""The README's shell examples run as written against a real server, and print what it shows.

Every ```sh block that calls the server is run by bash, in README order, in
one fresh folder holding a copy of ``experiments/``, against ``abconv serve``
started there on the defaults (only the port differs), as a reader following
the README would. When the block is followed by a ```json block, the last
command's output must be that JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_concurrency import free_port

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def examples() -> list[tuple[str, str | None]]:
    """(shell commands, expected JSON or None) for every block that talks to the server."""
    found = []
    blocks = list(BLOCK.finditer(README))
    for index, block in enumerate(blocks):
        language, text = block.group(1), block.group(2)
        if language != "sh" or "curl " not in text:
            continue
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = None
        if following is not None and following.group(1) == "json":
            if README[block.end() : following.start()].strip() == "":
                expected = following.group(2)
        found.append((text, expected))
    return found


EXAMPLES = examples()


def test_the_readme_has_examples_to_run() -> None:
    assert len(EXAMPLES) >= 4
    assert sum(expected is not None for _, expected in EXAMPLES) >= 3


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """``abconv serve`` on the defaults in a fresh folder: (that folder, its port)."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "experiments", folder / "experiments")
    port = free_port()
    with open(folder / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "abconv", "serve", "--port", str(port)],
            cwd=folder, env=clean_environment(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", server, folder / "server.log")
        yield folder, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ABCONV_")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("commands", "expected"), EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))]
)
def test_readme_example_runs_and_prints_what_it_shows(
    readme_server: tuple[Path, int], commands: str, expected: str | None
) -> None:
    folder, port = readme_server
    script = commands.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    # Fail on an HTTP error, quietly, as a reader would notice one.
    script = script.replace("curl ", "curl -sS --fail-with-body ")
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder, env=clean_environment(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    if expected is not None:
        last = out.stdout.strip().splitlines()[-1]
        assert json.loads(last) == json.loads(expected)


def wait_for(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"abconv serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
