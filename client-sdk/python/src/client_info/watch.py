"""The agent session stream kept open: reconnecting with jittered backoff and resuming after the
last sequence yielded, so every event arrives exactly once and in order across dropped
connections, server restarts and cuts for reading too slowly. Mirrors the Rust SDK's
client-sdk/src/watch.rs (`watch_session`, `drive`).

Imports `errors` and `retry` of the package; the client only as a type.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import grpc

from clientinfo.v1 import event_pb2

from .errors import ClientError, Reason
from .retry import jittered

if TYPE_CHECKING:
    from .client import Client

#: Response metadata naming the server's heartbeat interval in milliseconds.
HEARTBEAT_HEADER = "x-heartbeat-interval-ms"

# Codes after which reconnecting cannot help: the stream ends with the error.
_TERMINAL = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


@dataclass(frozen=True)
class WatchOptions:
    """How a session watch reconnects (times in seconds)."""

    #: Resume after this sequence (0: start with a snapshot).
    resume_after: int = 0
    #: First reconnect delay; doubles up to `max_backoff`. Each wait is drawn at random between
    #: zero and the current delay ("full jitter"), so desktops cut off together (a server
    #: restart) do not all come back at the same instant.
    initial_backoff: float = 0.1
    #: Longest reconnect delay.
    max_backoff: float = 5.0
    #: Also yield heartbeats (sequence 0).
    heartbeats: bool = False
    #: The heartbeat interval assumed until the server states its own (in the
    #: `x-heartbeat-interval-ms` response header, which then wins).
    heartbeat_interval: float = 15.0
    #: The stream is presumed dead when nothing (no event, no heartbeat) arrives for two
    #: heartbeat intervals plus this margin: it is dropped and resumed on a new connection, since
    #: the old one may be frozen without knowing it (NAT timeout, roaming, a proxy).
    silence_margin: float = 5.0
    #: Told each time the stream broke and is about to be opened again (for logs and metrics).
    on_reconnect: Optional[Callable[[ClientError], None]] = None

    def silence_deadline(self, interval: float) -> float:
        """How long a silent stream is trusted, for a server heartbeat `interval`."""
        return interval * 2 + self.silence_margin


class _Watchdog:
    """Cancels a call when nothing arrives for `deadline` seconds."""

    def __init__(self, call: Any, deadline: float) -> None:
        self.call = call
        self.deadline = deadline
        self.fired = False
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="client-info-watchdog", daemon=True)
        self._thread.start()

    def touch(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.deadline / 4)):
            if time.monotonic() - self._last > self.deadline:
                self.fired = True
                self.call.cancel()
                return


def _heartbeat_interval(call: Any, default: float) -> float:
    for key, value in call.initial_metadata() or ():
        if key == HEARTBEAT_HEADER:
            try:
                ms = int(value)
            except (TypeError, ValueError):
                return default
            return ms / 1000 if ms > 0 else default
    return default


class SessionWatch(Iterator[event_pb2.AgentEvent]):
    """What `Client.watch_session` returns: iterate over it for the events; `cancel()` (from any
    thread) ends it at once, also while it waits for a message or to reconnect."""

    def __init__(self, client: Client, options: WatchOptions) -> None:
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._events = _drive(client, options, self)

    def __iter__(self) -> SessionWatch:
        return self

    def __next__(self) -> event_pb2.AgentEvent:
        return next(self._events)

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Ends the stream: the iteration stops (StopIteration) and the call is cancelled."""
        self._cancelled.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def _open(self, call: Any) -> bool:
        with self._lock:
            self._call = call
            if self._cancelled.is_set():
                call.cancel()
                return False
            return True

    def _wait(self, seconds: float) -> bool:
        """Sleeps; false when cancelled meanwhile."""
        return not self._cancelled.wait(seconds)


def _drive(client: Client, options: WatchOptions, watch: SessionWatch) -> Iterator[event_pb2.AgentEvent]:
    """Keeps the session stream open: opens it after the last sequence yielded, yields each
    new event, and on a failure reconnects (a fresh connection when the old one went silent)
    with jittered backoff, until an error reconnecting cannot fix or `watch.cancel()`."""
    last = options.resume_after
    backoff = options.initial_backoff
    own_channel: Optional[grpc.Channel] = None
    fresh_connection = False
    try:
        while not watch.cancelled:
            if fresh_connection:
                # A connection of its own: the shared one may be the frozen one.
                if own_channel is not None:
                    own_channel.close()
                own_channel = client.new_channel()
                fresh_connection = False
            call = client.watch_session_once(last, channel=own_channel)
            if not watch._open(call):
                return
            watchdog = _Watchdog(call, options.silence_deadline(options.heartbeat_interval))
            try:
                watchdog.deadline = options.silence_deadline(
                    _heartbeat_interval(call, options.heartbeat_interval)
                )
                for message in call:
                    watchdog.touch()
                    backoff = options.initial_backoff
                    if not message.HasField("event"):
                        continue
                    event = message.event
                    kind = event.WhichOneof("event")
                    if kind == "heartbeat":
                        if not options.heartbeats:
                            continue
                    elif kind == "snapshot":
                        last = event.sequence
                    else:
                        if event.sequence <= last:
                            continue  # already yielded before a reconnection
                        last = event.sequence
                    yield event
                failure = ClientError(grpc.StatusCode.UNAVAILABLE, "stream ended")
            except grpc.RpcError as rpc_error:
                if watch.cancelled:
                    return
                if watchdog.fired:
                    fresh_connection = True
                    failure = ClientError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"nothing received for {watchdog.deadline:.0f} s: "
                        "the connection is presumed dead",
                    )
                else:
                    failure = ClientError.from_rpc_error(rpc_error)
            finally:
                watchdog.stop()
                call.cancel()
            if failure.code == grpc.StatusCode.OUT_OF_RANGE:
                last = 0  # older than the server keeps: start over with a snapshot
                continue
            if failure.code == grpc.StatusCode.UNAUTHENTICATED and (
                client.refreshes_tokens and failure.reason == Reason.TOKEN_EXPIRED
            ):
                continue  # the stream's token expired: resume at once with the next token
            if failure.code in _TERMINAL:
                raise failure
            if options.on_reconnect is not None:
                options.on_reconnect(failure)
            if not watch._wait(jittered(backoff)):
                return
            backoff = min(backoff * 2, options.max_backoff)
    finally:
        if own_channel is not None:
            own_channel.close()
