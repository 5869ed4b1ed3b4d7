"""Retries of idempotent calls: jittered exponential backoff, a bounded number of attempts, and
a retry budget shared by everything using one `Client` (gRPC's retry throttling, proposal A6:
each retryable failure spends a token, each success earns a tenth of one, and retries stop while
fewer than half the tokens are left), so an outage does not multiply the load. Mirrors the Rust
SDK's client-sdk/src/retry.rs.

Idempotent here means repeating the call cannot do twice what it does once: reads, an offer (its
interaction id is the key), a create with a `request_id`, a select or an unbind. Accept, close,
update, delete, link and unlink, and a create without a request id, are never retried.

Imports only `errors` of the package.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

import grpc

from .errors import ClientError

T = TypeVar("T")

#: Called before each retry with the error, the attempt that failed (1 = the first) and the
#: seconds it will wait: for logs and metrics.
RetryObserver = Callable[[ClientError, int, float], None]

_MAX_TOKENS = 10.0
_TOKEN_RATIO = 0.1


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried."""

    #: Attempts in all, the first included (1: no retries).
    max_attempts: int = 3
    #: The first wait's ceiling in seconds; each wait is drawn between zero and the ceiling
    #: ("full jitter"), which doubles after each attempt.
    initial_backoff: float = 0.1
    #: The largest ceiling, in seconds (also caps a server's RetryInfo delay).
    max_backoff: float = 2.0
    #: Told about each retry before its wait.
    on_retry: Optional[RetryObserver] = None

    @classmethod
    def none(cls) -> RetryPolicy:
        """No retries."""
        return cls(max_attempts=1)


class RetryThrottle:
    """The retry budget of a client: thread-safe, shared by every call of the client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = _MAX_TOKENS

    def success(self) -> None:
        """A call succeeded: earn back a tenth of a token."""
        with self._lock:
            self._tokens = min(self._tokens + _TOKEN_RATIO, _MAX_TOKENS)

    def failure(self) -> bool:
        """A retryable failure: spend a token; true when a retry is still allowed."""
        with self._lock:
            self._tokens = max(self._tokens - 1.0, 0.0)
            return self._tokens > _MAX_TOKENS / 2.0


def jittered(ceiling: float) -> float:
    """A random wait between zero and `ceiling` seconds (full jitter)."""
    return random.uniform(0.0, max(ceiling, 0.0))


def run(
    policy: RetryPolicy,
    throttle: RetryThrottle,
    idempotent: bool,
    attempt: Callable[[], T],
) -> T:
    """Runs `attempt` once, and again under `policy` while it fails in a way a repetition can fix
    (unavailable, overloaded with a retry delay, a concurrent change, a deadline), the call is
    idempotent, and `throttle` still allows a retry. Raises `ClientError`."""
    ceiling = policy.initial_backoff
    attempts = 1
    while True:
        try:
            value = attempt()
        except grpc.RpcError as rpc_error:
            error = ClientError.from_rpc_error(rpc_error)
            retryable = idempotent and (
                error.is_retryable or error.code == grpc.StatusCode.DEADLINE_EXCEEDED
            )
            if not retryable or attempts >= policy.max_attempts or not throttle.failure():
                raise error from None
            wait = (
                min(error.retry_after, policy.max_backoff)
                if error.retry_after is not None
                else jittered(ceiling)
            )
            if policy.on_retry is not None:
                policy.on_retry(error, attempts, wait)
            time.sleep(wait)
            ceiling = min(ceiling * 2, policy.max_backoff)
            attempts += 1
        else:
            throttle.success()
            return value
