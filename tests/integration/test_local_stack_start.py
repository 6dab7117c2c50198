"""`LocalStack.start` with a Trino that cannot start, beside a real slapd and S3Proxy
started side by side with it: the failure, or Ctrl-C while they start, stops every part
and leaves no process of the stack behind; the failure says which server failed.

The Trino is a stand-in installation whose launcher fails at once or never gets ready,
so these tests take seconds, not a real Trino's start.
"""

from __future__ import annotations

import _thread
import io
import os
import threading
import time
from pathlib import Path

import pytest

from datahub.stack.local import LocalStack
from datahub.stack.process import ProcessError, Progress

REPO = Path(__file__).resolve().parents[2]
#: How long a test waits for what must happen: a bound against hanging.
GIVE_UP_AFTER = 60


def stand_in_trino(cache: Path, launcher: str) -> Path:
    """A Trino cache whose installation is complete but whose launcher runs ``launcher``."""
    home = cache / "server"
    (home / "bin").mkdir(parents=True)
    (home / "plugin").mkdir()
    script = home / "bin" / "launcher"
    script.write_text(f"#!/bin/sh\n{launcher}\n")
    script.chmod(0o755)
    (home / ".complete").write_text("stand-in\n")
    return cache


def processes_of(state_dir: Path) -> list[str]:
    """The command lines of running processes that name ``state_dir`` (the stack's parts
    each run with their configuration there)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state_dir) in command and int(pid) != os.getpid():
            found.append(command)
    return found


def test_a_server_failing_to_start_stops_the_others_and_is_named(tmp_path):
    cache = stand_in_trino(tmp_path / "trino-cache", 'echo "no Trino here"; exit 1')
    out = io.StringIO()
    stack = LocalStack(
        tmp_path / "state",
        REPO / "jupyterhub_config.py",
        progress=Progress(out),
        trino_cache=cache,
    )
    with pytest.raises(ProcessError) as raised:
        stack.start()
    message = str(raised.value)
    assert message.startswith("trino-trino exited with status 1 while waiting for Trino trino")
    assert "no Trino here" in message
    assert "Starting the spooling storage (S3Proxy) and Trino cluster trino side by side" in (
        out.getvalue()
    )
    assert not (stack.slapd.running or stack.storage.running or stack.trino.running)
    assert stack.hub is None
    assert processes_of(stack.state_dir) == []


def test_ctrl_c_while_the_servers_start_stops_them_all(tmp_path):
    # Never ready; its command line (which names the state directory) stays.
    cache = stand_in_trino(tmp_path / "trino-cache", "while true; do sleep 0.2; done")
    stack = LocalStack(
        tmp_path / "state",
        REPO / "jupyterhub_config.py",
        progress=Progress(io.StringIO()),
        trino_cache=cache,
    )

    both_ran = threading.Event()

    def press_ctrl_c_once_both_run() -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER
        while time.monotonic() < deadline and not both_ran.is_set():
            if all(part is not None and part.running for part in (stack.storage, stack.trino)):
                both_ran.set()
            time.sleep(0.1)
        _thread.interrupt_main()  # as Ctrl-C: KeyboardInterrupt in the main thread

    presser = threading.Thread(target=press_ctrl_c_once_both_run)
    presser.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            stack.start()
    finally:
        presser.join()
    assert both_ran.is_set()
    assert not (stack.slapd.running or stack.storage.running or stack.trino.running)
    assert processes_of(stack.state_dir) == []
