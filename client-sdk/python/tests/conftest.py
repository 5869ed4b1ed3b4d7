"""Fixtures: the real server (the binary named by CLIENT_INFO_SERVER_BIN) on a fresh PostgreSQL
database of its own, driven through its command line only, as an operator would: `migrate`,
`admin create-domain`, `admin create-user`, `admin mint-token`, then `--listen 127.0.0.1:0
--log-json`, reading the bound address from the log line whose message is "serving". Nothing is
mocked. The database is dropped at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

from client_info import Client, RetryPolicy

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("CLIENT_INFO_SERVER_BIN") or str(
    REPO / "target" / "debug" / "client-info-server-under-test"
)
POSTGRES = os.environ.get("CLIENT_INFO_TEST_POSTGRES", "postgres://postgres@127.0.0.1")
ALL = "contacts.read,contacts.write,interactions.handle,interactions.route"
AGENT = "interactions.handle,contacts.read"


class Server:
    """One server process; `addr` is where it listens."""

    def __init__(self, env: dict[str, str], listen: str = "127.0.0.1:0", extra: Sequence[str] = ()):
        self.env = env
        self.extra = tuple(extra)
        self.lines: list[str] = []
        self._serving = threading.Event()
        self.addr = ""
        self.proc = subprocess.Popen(
            [BIN, "--listen", listen, "--log-json", "--heartbeat", "1s", *self.extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._serving.wait(60):
            self.stop()
            raise RuntimeError("the server did not start:\n" + "\n".join(self.lines[-30:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if not self.addr:
                try:
                    fields = json.loads(line).get("fields", {})
                except ValueError:
                    continue
                if fields.get("message") == "serving":
                    self.addr = fields["local_addr"]
                    self._serving.set()

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def stop(self) -> None:
        """Stops it as an orchestrator would (SIGTERM, a graceful shutdown), killing it if it
        does not end within 15 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class User:
    id: int
    token: str


@dataclass
class Domain:
    """A domain (tenant) with a routing/CRM service account holding every permission and an
    agent (`interactions.handle`, `contacts.read`)."""

    id: int
    service: User
    agent: User


class Database:
    """A fresh database of this test session, and the operator's commands on it."""

    def __init__(self) -> None:
        self.name = f"client_info_pysdk_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=f"{POSTGRES}/{self.name}",
            CLIENT_INFO_JWT_SECRET=secrets.token_hex(32),
            CLIENT_INFO_LOG="warn,client_info_server::server=info",
        )
        self.run("migrate")

    def run(self, *args: str) -> str:
        out = subprocess.run([BIN, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{BIN} {' '.join(args)} failed:\n{out.stdout}{out.stderr}")
        return out.stdout.strip()

    def domain(self, region: str = "GB") -> Domain:
        domain = int(self.run("admin", "create-domain", "--region", region, f"d-{uuid.uuid4().hex[:10]}"))
        return Domain(domain, self.user(domain, "Routing and CRM", ALL), self.user(domain, "Alice", AGENT))

    def user(self, domain: int, name: str, permissions: str) -> User:
        user = int(self.run("admin", "create-user", "--domain", str(domain), name))
        token = self.run(
            "admin", "mint-token", "--domain", str(domain), "--user", str(user),
            "--permissions", permissions,
        )
        return User(user, token)

    def server(self, listen: str = "127.0.0.1:0", extra: Sequence[str] = ()) -> Server:
        return Server(self.env, listen, extra)

    def drop(self) -> None:
        subprocess.run(
            ["psql", f"{POSTGRES}/postgres", "-q", "-c", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'],
            capture_output=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def database() -> Iterator[Database]:
    db = Database()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="session")
def server(database: Database) -> Iterator[Server]:
    s = database.server()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def domain(database: Database) -> Domain:
    return database.domain()


def connect(server: Server, token: str, retry: Optional[RetryPolicy] = None) -> Client:
    return Client(server.url, token=token, timeout=10.0, retry=retry or RetryPolicy())


@pytest.fixture
def service(server: Server, domain: Domain) -> Iterator[Client]:
    with connect(server, domain.service.token) as client:
        yield client


@pytest.fixture
def agent(server: Server, domain: Domain) -> Iterator[Client]:
    with connect(server, domain.agent.token) as client:
        yield client
