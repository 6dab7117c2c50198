"""The tests' kernel client (``users.kernel``) survives what a long session does to it.

A single-user server closes a kernel websocket whose client does not answer its pings
(``WebSocket ping timeout after 90001 ms``); on a new machine, where the first tests are
slow, alice's kernel sat idle that long between two tests and six tests failed. The server
closes a connection the same way when another one opens with the same ``session_id``
("Replacing stale connection"), which lets these tests close it at will instead of
waiting out the ping timeout.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import websocket

from datahub.testing import MALLOC_ARENAS_PROBE


@pytest.fixture
def kernel(users):
    kernel = users.new_kernel("alice")
    yield kernel
    kernel.close()


def close_from_the_server(kernel) -> None:
    """Make the single-user server close the client's websocket: a second connection
    with the same session replaces it. The replacement closes too."""
    closed = kernel.closed_websockets
    replacement = websocket.create_connection(
        kernel.ws_url, header=[f"Authorization: {kernel.headers['Authorization']}"], timeout=60
    )
    deadline = time.monotonic() + 60
    while kernel.closed_websockets == closed:
        assert time.monotonic() < deadline, "the server never closed the replaced websocket"
        time.sleep(0.05)
    replacement.close()


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"the kernel never wrote {path}"
        time.sleep(0.05)


def test_kernel_client_runs_code_after_the_server_closed_its_idle_websocket(kernel):
    kernel.execute("x = 41")
    close_from_the_server(kernel)
    assert not kernel.connected
    assert kernel.value("x + 1") == 42  # same kernel, same variables, a new websocket


def test_a_spawned_kernels_threads_share_two_malloc_arenas(users):
    # The kernelspec the spawner installs sets MALLOC_ARENA_MAX=2: %%sql's segment
    # threads share an arena instead of each keeping its freed memory (see
    # tests/unit/test_spawner.py, which also shows glibc's default of one per thread).
    out = users.kernel("alice").execute(MALLOC_ARENAS_PROBE)
    assert out["status"] == "ok", out
    assert int(out["stdout"].strip()) <= 2, out["stdout"]
