"""Retries and the session stream's resume, forced by really stopping and restarting servers."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Optional

import grpc
import pytest

from client_info import Client, ClientError, RetryPolicy, WatchOptions
from clientinfo.v1 import event_pb2

from conftest import Database, Domain, Server


def test_an_idempotent_call_is_retried_through_an_outage_and_a_non_idempotent_one_never(
    database: Database, domain: Domain
) -> None:
    server = database.server()
    port = server.addr
    with Client(server.url, token=domain.service.token) as setup:
        contact = setup.create_contact("Ivy Cole").contact
    server.stop()
    restarted: list[Server] = []
    retries: list[ClientError] = []

    def on_retry(error: ClientError, attempt: int, wait: float) -> None:
        retries.append(error)
        if not restarted:  # the first failure: bring the server back on the same address
            restarted.append(database.server(listen=port))

    policy = RetryPolicy(max_attempts=5, initial_backoff=0.3, max_backoff=1.0, on_retry=on_retry)
    never: list[ClientError] = []
    try:
        with Client(f"http://{port}", token=domain.service.token, retry=policy) as client:
            assert client.get_contact(contact.id).display_name == "Ivy Cole"
            assert retries and all(e.code == grpc.StatusCode.UNAVAILABLE for e in retries)
            assert retries[0].is_retryable and retries[0].reason is None  # no server to say why
        restarted[0].stop()

        # Down again: a call that must not be repeated fails at once, after one attempt.
        watching = RetryPolicy(max_attempts=5, initial_backoff=0.3, on_retry=lambda e, a, w: never.append(e))
        with Client(f"http://{port}", token=domain.service.token, retry=watching) as client:
            for call in (
                lambda: client.accept_interaction("call-1", domain.agent.id),
                lambda: client.update_contact(contact.id, contact.version, description="x"),
                lambda: client.create_contact("No Request Id"),
            ):
                with pytest.raises(ClientError) as caught:
                    call()
                assert caught.value.code == grpc.StatusCode.UNAVAILABLE
            assert never == []
            # ...while a read is retried (and, the server staying down, fails in the end).
            with pytest.raises(ClientError) as caught:
                client.get_contact(contact.id)
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE and len(never) >= 1
    finally:
        for s in restarted:
            s.stop()


def test_the_session_stream_resumes_across_a_server_restart_without_loss_or_repeat(
    database: Database, domain: Domain
) -> None:
    # Two servers on one database: the agent watches through `front`, routing writes through
    # `back`. `front` is stopped and a new process started on its address while `back` keeps
    # offering calls, so events are produced while the stream is down.
    front = database.server()
    back = database.server()
    address = front.addr
    servers = [front, back]
    reconnects: list[ClientError] = []
    events: "queue.Queue[Optional[event_pb2.AgentEvent]]" = queue.Queue()
    failure: list[BaseException] = []

    agent = Client(f"http://{address}", token=domain.agent.token)
    routing = Client(back.url, token=domain.service.token)

    stream = agent.watch_session(
        WatchOptions(initial_backoff=0.05, max_backoff=0.5, on_reconnect=reconnects.append)
    )

    def watch() -> None:
        try:
            for event in stream:
                events.put(event)
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            failure.append(e)
        finally:
            events.put(None)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    got: list[event_pb2.AgentEvent] = []

    def collect_until(ids: list[str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            offered = [e.interaction_offered.panel.interaction_id for e in got if e.HasField("interaction_offered")]
            if all(i in offered for i in ids):
                return
            try:
                event = events.get(timeout=1)
            except queue.Empty:
                continue
            assert event is not None, f"the stream ended: {failure}"
            got.append(event)
        raise AssertionError(f"missing events; failure={failure}")

    def offer(n: int) -> list[str]:
        ids = [f"call-{uuid.uuid4()}" for _ in range(n)]
        for i in ids:
            routing.offer_call(i, "+44 7400 100200", domain.agent.id)
        return ids

    try:
        before = offer(5)
        collect_until(before)
        front.stop()
        during = offer(5)  # the stream is down now
        front2 = database.server(listen=address)
        servers.append(front2)
        after = offer(5)
        collect_until(before + during + after)
        # A little longer: nothing arrives twice.
        time.sleep(1.5)
        while not events.empty():
            e = events.get()
            if e is not None:
                got.append(e)
    finally:
        stream.cancel()
        watcher.join(10)
        routing.close()
        agent.close()
        for s in reversed(servers):
            s.stop()
    assert not watcher.is_alive(), "cancel() did not end the stream"

    assert reconnects, "the stream never reconnected"
    assert got[0].WhichOneof("event") == "snapshot"
    assert [e.WhichOneof("event") for e in got].count("snapshot") == 1  # resumed, not restarted
    offered = [e.interaction_offered.panel.interaction_id for e in got if e.HasField("interaction_offered")]
    assert offered == before + during + after  # every event once, in order
    sequences = [e.sequence for e in got[1:]]
    assert sequences == sorted(set(sequences)), "a sequence repeated or went back"
