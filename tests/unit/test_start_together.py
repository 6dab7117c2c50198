"""`start_together`: the local stack's servers that need nothing of one another start side
by side, and a failure or Ctrl-C while they start leaves none of them running.

The servers here are small shell processes (`ManagedServer`s like the stack's): what is
proved is the threads' and the stops' choreography, not a real server's start.
"""

from __future__ import annotations

import _thread
import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from datahub.stack.process import (
    ManagedProcess,
    ManagedServer,
    ProcessError,
    Progress,
    start_together,
)

#: How long a server here waits for what must happen: a bound against hanging.
GIVE_UP_AFTER = 30


class ShellServer(ManagedServer):
    """A server whose process runs ``script`` and is ready when ``ready()`` says so;
    ``before_launch`` runs first (a server still preparing)."""

    def __init__(
        self,
        tmp_path: Path,
        name: str,
        script: str = "sleep 600",
        ready: Callable[[], bool] = lambda: False,
        before_launch: Callable[[], object] = lambda: None,
    ) -> None:
        self.name = name
        self.log_file = tmp_path / f"{name}.log"
        self.script = script
        self.ready = ready
        self.before_launch = before_launch
        self.launched: ManagedProcess | None = None
        #: What its start raised, if anything.
        self.error: BaseException | None = None

    def start(self) -> ShellServer:
        if self.running:
            return self
        try:
            self.before_launch()
            self.launched = ManagedProcess(
                self.name, ["sh", "-c", self.script], log_file=self.log_file
            )
            self._launch(self.launched, (self.ready, GIVE_UP_AFTER, f"{self.name} to answer"))
        except BaseException as error:
            self.error = error
            raise
        return self


def stopped_while_starting(server: ShellServer) -> bool:
    """Whether ``server`` was stopped (SIGTERM) while it waited to be ready, rather than
    giving up by itself."""
    return str(server.error).startswith(f"{server.name} exited with status -15 while waiting")


def gone(server: ShellServer) -> bool:
    """Whether the server's process (if it was ever launched) has exited and was reaped."""
    process = server.launched.process if server.launched else None
    if process is None:
        return True
    if process.poll() is None:
        return False
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_servers_start_side_by_side_and_each_says_when_it_is_ready(tmp_path):
    # Each is ready only once the other runs: one after the other, the first would wait
    # in vain for the second and fail.
    first = ShellServer(tmp_path, "first", ready=lambda: second.running)
    second = ShellServer(tmp_path, "second", ready=lambda: first.running)
    out = io.StringIO()
    try:
        start_together({"the first": first, "the second": second}, Progress(out))
        assert first.running and second.running
    finally:
        first.stop()
        second.stop()
    lines = sorted(out.getvalue().splitlines())
    assert [line.split(", after ")[0] for line in lines] == [
        "==> Ready: the first",
        "==> Ready: the second",
    ]


def test_one_failing_stops_the_others_and_its_error_names_it(tmp_path):
    waiting = ShellServer(tmp_path, "waiting")  # never ready: only a stop ends its wait
    failing = ShellServer(
        tmp_path,
        "failing",
        script="echo no config here; exit 3",
        before_launch=lambda: waiting_launched(waiting),
    )
    ready = ShellServer(tmp_path, "ready", ready=lambda: True)
    with pytest.raises(ProcessError) as raised:
        start_together({"a": waiting, "b": failing, "c": ready}, Progress(io.StringIO()))
    message = str(raised.value)
    assert message.startswith("failing exited with status 3 while waiting for failing to")
    assert "no config here" in message
    assert stopped_while_starting(waiting)
    assert ready.error is None and ready.launched is not None
    assert gone(waiting) and gone(ready)
    assert not (waiting.running or failing.running or ready.running)


def waiting_launched(server: ShellServer) -> None:
    """Wait until ``server`` runs (so that a failure finds it starting, not unlaunched)."""
    deadline = time.monotonic() + GIVE_UP_AFTER
    while not server.running:
        assert time.monotonic() < deadline, f"{server.name} never ran"
        time.sleep(0.05)


def test_a_server_launched_after_the_failure_is_stopped_too(tmp_path):
    failed = threading.Event()
    # Still preparing when the other fails; it launches its process only afterwards.
    late = ShellServer(tmp_path, "late", before_launch=lambda: failed.wait(GIVE_UP_AFTER))

    def fail() -> None:
        failed.set()
        raise ProcessError("failing could not be prepared")

    failing = ShellServer(tmp_path, "failing", before_launch=fail)
    with pytest.raises(ProcessError, match="^failing could not be prepared$"):
        start_together({"late": late, "failing": failing}, Progress(io.StringIO()))
    assert stopped_while_starting(late)
    assert gone(late) and not late.running


def test_ctrl_c_while_starting_stops_every_server_and_is_raised(tmp_path):
    waiting = ShellServer(tmp_path, "waiting")

    def interrupt() -> None:
        waiting_launched(waiting)
        _thread.interrupt_main()  # as Ctrl-C: KeyboardInterrupt in the main thread

    interrupted = ShellServer(tmp_path, "interrupted", before_launch=interrupt)
    with pytest.raises(KeyboardInterrupt):
        start_together({"waiting": waiting, "interrupted": interrupted}, Progress(io.StringIO()))
    assert stopped_while_starting(waiting) and stopped_while_starting(interrupted)
    assert gone(waiting) and gone(interrupted)
