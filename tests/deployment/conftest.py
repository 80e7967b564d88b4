"""Real app servers for the deployment tests: gunicorn processes on loopback, on a database
of the test's own (made here, dropped after), configured as production is.

Each server listens on a socket this process binds to a free port (port 0) and hands to
gunicorn (``--bind fd://N``): no port is guessed, none can be taken in between. A server is
ready when its login page answers, polled with a deadline; whatever happens, every process
started here is ended (terminate, then kill) before the database is dropped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]
#: how long a server may take to answer its first request (importing and wiring the app)
READY_WITHIN_SECONDS = 60.0
#: how long one request may take
REQUEST_TIMEOUT_SECONDS = 30.0
#: a facility code of the right shape that is not the demo's (production refuses that one)
FACILITY_CODE = "W0001"


@pytest.fixture
def database_url(databases: DatabaseFactory) -> Iterator[str]:
    """A database of this test's own (a copy of the migrated template), dropped after it: the
    servers of another test never see it, and no snapshot of the worker's live database is
    touched. Scenes are built on it as the test asks for them."""
    url = databases.create()
    yield url
    databases.drop(url)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def cookie(self, name: str) -> str | None:
        for header in self.headers.get_all("Set-Cookie") or []:
            key, _sep, rest = header.partition("=")
            if key.strip() == name:
                return rest.split(";", 1)[0]
        return None


@dataclass
class Server:
    """One gunicorn app server on loopback."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        json_body: Any = None,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> Answer:
        import json

        body: bytes | None = None
        sent = dict(headers or {})
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@dataclass
class Browser:
    """A browser's cookie jar, kept by hand: the same cookie sent to whichever server the
    reverse proxy picks (here: the one the test names)."""

    cookies: dict[str, str] = field(default_factory=dict)

    def send(self, server: Server, method: str, path: str, **kwargs: Any) -> Answer:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        answer = server.request(method, path, headers=headers, **kwargs)
        for header in answer.headers.get_all("Set-Cookie") or []:
            name, _sep, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "expires=thu, 01 jan 1970" in header.lower() or value == "":
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return answer


CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_of(page: Answer) -> str:
    found = CSRF_FIELD.search(page.text)
    assert found, f"no CSRF token on the page ({page.status}): {page.text[:300]}"
    return found.group(1)


def _free_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    return listener


def server_environment(app: Flask, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of every server: production, one secret key, one audit key file (the
    test app's, which its scenes' audit entries were made with), one database."""
    checkpoints = Path(app.instance_path) / f"checkpoints-{secrets.token_hex(4)}"
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CELLCHAIN_")
    }
    environment.update(
        {
            "CELLCHAIN_ENV": "production",
            # one key for every server: each signs and reads the others' session cookies
            "CELLCHAIN_SECRET_KEY": secrets.token_hex(32),
            "CELLCHAIN_DATABASE_URL": database_url,
            "CELLCHAIN_FACILITY_CODE": FACILITY_CODE,
            "CELLCHAIN_AUDIT_KEY_FILE": str(app.config["AUDIT_KEY_FILE"]),
            "CELLCHAIN_AUDIT_CHECKPOINT_DIR": str(checkpoints),
            "CELLCHAIN_INSTANCE_PATH": app.instance_path,
            "CELLCHAIN_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
            "PYTHONPATH": str(ROOT),
            **extra,
        }
    )
    return environment


def _wait_until_ready(server: Server, deadline: float) -> None:
    """Ask for the login page until it answers 200, the process ends, or the deadline passes.

    The socket listens before gunicorn starts, so a request made while the app is still
    loading waits in the socket's queue and is answered once the worker is up: the first
    request usually is the wait. A refused or reset connection means the process ended (it
    held the only copy of the socket); the process is then waited for, briefly, to report it.
    """
    last_error = "no answer yet"
    while (left := deadline - time.monotonic()) > 0:
        if server.process.poll() is not None:
            pytest.fail(
                f"app server {server.name} exited with {server.process.returncode}:\n"
                f"{server.output()}"
            )
        try:
            answer = server.request("GET", "/login", timeout=left)
        except OSError as error:
            last_error = str(error)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=min(1.0, max(deadline - time.monotonic(), 0)))
            continue
        if answer.status == 200:
            return
        last_error = f"{answer.status}: {answer.text[:200]}"
    pytest.fail(f"app server {server.name} not ready in time ({last_error}):\n{server.output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Gunicorn's quick shutdown (SIGINT: no wait for idle keep-alive connections), then a
    kill if it has not ended within 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def start_servers(
    tmp_path: Path,
) -> Iterator[Callable[..., list[Server]]]:
    """``start_servers(environment, count)``: that many gunicorn servers with that
    environment, ready; all stopped at the end of the test, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []

    def start(environment: dict[str, str], count: int = 2) -> list[Server]:
        servers: list[Server] = []
        for index in range(count):
            name = "AB"[index] if count <= 2 else str(index)
            listener = _free_socket()
            log = tmp_path / f"server-{name}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "--bind",
                        f"fd://{listener.fileno()}",
                        "--workers",
                        "1",
                        "--threads",
                        "4",
                        "--chdir",
                        str(ROOT),
                        "--graceful-timeout",
                        "5",
                        "wsgi:app",
                    ],
                    cwd=ROOT,
                    env=environment,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    pass_fds=(listener.fileno(),),
                )
            started.append(process)
            # the server holds the socket now: with this copy closed, a connection to a
            # server that died is refused at once instead of waiting in the queue
            port = listener.getsockname()[1]
            listener.close()
            servers.append(Server(name, port, process, log))
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        for server in servers:
            _wait_until_ready(server, deadline)
        return servers

    try:
        yield start
    finally:
        for process in started:
            _stop(process)
