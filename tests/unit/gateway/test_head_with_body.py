"""A response's head goes out with its body, in one write."""

from __future__ import annotations

from squall.gateway.protocol import HeadWithBody


class Recording:
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


def test_the_head_waits_for_the_body():
    transport = Recording()
    holding = HeadWithBody(transport)  # type: ignore[arg-type]
    holding.write(HEAD)
    assert transport.writes == []
    holding.write(b"hello")
    assert transport.writes == [HEAD + b"hello"]


def test_after_the_head_everything_passes_through():
    transport = Recording()
    holding = HeadWithBody(transport)  # type: ignore[arg-type]
    holding.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    holding.write(b"5\r\nhello\r\n")
    holding.write(b"HTTP/1.1 200 OK looks like a head but is a chunk")  # a body may say anything
    holding.write(b"0\r\n\r\n")
    assert len(transport.writes) == 3
    assert transport.writes[1] == b"HTTP/1.1 200 OK looks like a head but is a chunk"


def test_an_interim_continue_is_not_held():
    transport = Recording()
    holding = HeadWithBody(transport)  # type: ignore[arg-type]
    holding.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    holding.write(HEAD)
    holding.write(b"hello")
    assert transport.writes[1:] == [HEAD + b"hello"]


def test_closing_sends_a_held_head_first():
    transport = Recording()
    holding = HeadWithBody(transport)  # type: ignore[arg-type]
    holding.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    holding.close()
    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert transport.closed and holding.is_closing()
