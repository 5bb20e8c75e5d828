"""HTTP/1.1 over a bare socket, for probes a well-behaved client (httpx) will not send:
slow or oversized heads, odd `Expect`s, and reading exactly what the node put on the wire."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field

import h11


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    #: every header as sent, repeats kept, names lower-cased
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> dict:
        return json.loads(self.body)


def connect(port: int, timeout: float = 5) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def request(path: str, method: str = "GET", headers: list[tuple[str, str]] | None = None,
            body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: node", *(f"{name}: {value}" for name, value in headers or [])]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One client connection: send raw bytes, read responses strictly (h11 rejects a
    response that breaks framing, so stray bytes after a 204 fail the next read)."""

    def __init__(self, port: int, timeout: float = 5):
        self.sock = connect(port, timeout)
        self.h11 = h11.Connection(h11.CLIENT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self, method: str = "GET") -> Reply:
        """The next response (h11 only needs to know the method to frame a HEAD's)."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        if self.h11.our_state is h11.IDLE:  # h11 tracks the client side too: tell it what was sent
            self.h11.send(h11.Request(method=method, target="/", headers=[("Host", "node")]))
            self.h11.send(h11.EndOfMessage())
        status, headers, body = 0, [], b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return Reply(status, dict(headers), body, headers)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the node closed the connection before a response")

    def closed_within(self, seconds: float) -> float | None:
        """Seconds until the node closed the connection (reading and discarding what it sent),
        or None if it is still open after `seconds`."""
        start = time.monotonic()
        self.sock.settimeout(seconds)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return time.monotonic() - start

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rss_kb(pid: int) -> int:
    """A process's resident set size, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
