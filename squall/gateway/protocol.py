"""The HTTP/1.1 protocol the gateway is served with: uvicorn's httptools protocol plus what
a public listener needs and uvicorn does not enforce with httptools.

- The request head is bounded as API Gateway bounds it (431): the request line and header
  values at most `max_head_bytes`, at most `max_headers` fields. httptools buffers a header
  until it is complete, so a head still incomplete after twice the limit has arrived is
  refused as it streams in rather than buffered.
- A client has `header_timeout` seconds to send a request's head (slowloris), and
  `body_timeout` seconds from the end of the head to send its body (slowloris on bodies,
  which httptools would otherwise wait for for ever); a kept-alive connection is closed
  after `idle_timeout` idle seconds (uvicorn's keep-alive timer).
- Connections beyond `max_connections` get 503 for their first request and are closed.
- An `Expect` other than `100-continue` is answered 417 (RFC 9110 §10.1.1).
- The header names as the client spelt them are kept in the scope (`HEADER_NAMES`), for
  payload format 1.0, whose events keep them; ASGI lower-cases `scope["headers"]`.

Errors are the gateway's JSON bodies, sent with `connection: close` except the 417 (the
request is read to its end, so the connection stays usable).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from squall.events.apigw_v1 import HEADER_NAMES
from squall.gateway.responses import HttpResponse, error_response
from squall.gateway.settings import GatewaySettings

CLOSE = (b"connection", b"close")
#: what the request line adds to the method and target: two spaces and "HTTP/1.1"
REQUEST_LINE_OVERHEAD = 10


def gateway_protocol(settings: GatewaySettings) -> type[GatewayProtocol]:
    """The protocol class for uvicorn.Config(http=...), bound to these limits."""
    return type("GatewayProtocol", (GatewayProtocol,), {"settings": settings})


def closing(response: HttpResponse) -> HttpResponse:
    response.headers.append(CLOSE)
    return response


class GatewayProtocol(HttpToolsProtocol):
    settings: ClassVar[GatewaySettings] = GatewaySettings()

    #: the pending header timeout (None once a head is complete and until the next one begins)
    _head_timer: asyncio.TimerHandle | None = None
    #: the pending body timeout (from the end of a head until its message is complete)
    _body_timer: asyncio.TimerHandle | None = None
    #: bytes received since the current request began, while its head is incomplete
    _head_bytes = 0
    _reading_head = False
    #: between the end of a head and the end of its message
    _awaiting_body = False
    #: header value bytes and the first unsupported `Expect` of the current request
    _value_bytes = 0
    _expectation: bytes | None = None
    _over_limit = False
    #: the current request's header names as sent, in order
    _names: list[bytes]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive = self.settings.idle_timeout  # type: ignore[assignment]  # uvicorn says int
        self._over_limit = len(self.connections) > self.settings.max_connections
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        # The timers are armed only for what this read left incomplete: a request whose head
        # (and body) came in one read, as nearly all do, costs no timer at all.
        if self._reading_head:
            # the whole chunk belongs to the incomplete head (or, pipelined, also to the end
            # of the previous request: an over-count, never an under-count)
            self._head_bytes += len(data)
            if self._head_bytes > 2 * self.settings.max_head_bytes:
                self._refuse(self._too_large())
            elif self._head_timer is None:
                self._arm_head_timer()
        elif self._awaiting_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.settings.body_timeout, self._body_timed_out)

    # ---- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head, self._head_bytes, self._value_bytes, self._expectation = True, 0, 0, None
        self._names = self.scope[HEADER_NAMES] = []  # type: ignore[literal-required]

    def on_header(self, name: bytes, value: bytes) -> None:
        self._names.append(name)
        super().on_header(name, value)
        self._value_bytes += len(value)
        if self.headers[-1][0] == b"expect" and value.lower() != b"100-continue" and self._expectation is None:
            self._expectation = value

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_head_timer()
        self._cancel_body_timer()
        self._awaiting_body = True  # the body timer starts if this read does not complete it
        previous = self.cycle
        rejection = self._rejection()
        if rejection is None:
            super().on_headers_complete()
        else:
            # uvicorn starts the request's cycle with self.app: answer with the rejection
            # instead, so the rest of the request is parsed (and discarded) as usual
            app, self.app = self.app, rejection
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        cycle = self.cycle
        if cycle is not None and cycle is not previous:  # (an upgrade request starts none)
            # its task has not run yet: it writes through a transport holding its head
            cycle.transport = HeadWithBody(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._awaiting_body = False
        self._cancel_body_timer()
        super().on_message_complete()

    def _rejection(self) -> HttpResponse | None:
        settings = self.settings
        if self._over_limit:
            return closing(error_response(503, f"the node is at its limit of {settings.max_connections} connections",
                                          error="TooManyConnections"))
        head = len(self.url) + len(self.parser.get_method()) + REQUEST_LINE_OVERHEAD + self._value_bytes
        if head > settings.max_head_bytes:
            return closing(self._too_large())
        if len(self.headers) > settings.max_headers:
            return closing(self._too_large(f"the request has more than {settings.max_headers} header fields"))
        if self._expectation is not None:
            return error_response(417, f"unsupported expectation: {self._expectation.decode('latin-1')!r}",
                                  error="ExpectationFailed")
        return None

    def _too_large(self, message: str | None = None) -> HttpResponse:
        message = message or f"the request line and header values are over {self.settings.max_head_bytes} bytes"
        return error_response(431, message, error="RequestHeaderFieldsTooLarge")

    # ---- the header timeout ------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.settings.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        _cancel(self._head_timer)
        self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head behind a request in flight: wait for that one
        elif self._reading_head:
            self._refuse(error_response(408, f"the request headers did not arrive within "
                                             f"{self.settings.header_timeout:g} s", error="RequestTimeout"))
        else:
            self.transport.close()  # connected and never sent a byte

    # ---- the body timeout --------------------------------------------------------------

    def _cancel_body_timer(self) -> None:
        _cancel(self._body_timer)
        self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        if self.pipeline:  # queued behind a request in flight, reading paused: not the client's fault
            self._body_timer = self.loop.call_later(self.settings.body_timeout, self._body_timed_out)
            return
        if cycle.response_started:  # answered early (a 413): just stop waiting for the rest
            self.transport.close()
            return
        # the endpoint is waiting for the body: it sees a disconnect and answers nothing
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(error_response(408, f"the request body did not arrive within {self.settings.body_timeout:g} s",
                                    error="RequestTimeout"))

    def _refuse(self, response: HttpResponse) -> None:
        """Answer a request whose head is not complete (there is no cycle to answer it) and close."""
        self._reading_head = False
        headers = [*response.headers, (b"content-length", str(len(response.body)).encode()), CLOSE]
        lines = [STATUS_LINE[response.status], *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n"]
        self.transport.write(b"".join(lines) + response.body)
        self.transport.close()


class HeadWithBody:
    """The connection's transport as one response's cycle sees it: uvicorn writes a
    response's head on `http.response.start` and its body on `http.response.body`; the
    head is held and goes out with the first body write, so a response is one send (one
    segment, one wake-up of the client) instead of two. An interim `100 Continue` is not a
    head: the client waits for it before sending the body, so it goes out at once."""

    __slots__ = ("_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self._head = b""
        #: whether the head was taken (everything after it passes straight through)
        self._held = False

    def write(self, data: bytes) -> None:
        if self._held:
            head, self._head = self._head, b""
            self._transport.write(head + data if head else data)
        elif data.startswith(b"HTTP/1.1 100 "):
            self._transport.write(data)
        else:
            self._head, self._held = data, True

    def close(self) -> None:
        if self._head:
            self._transport.write(self._head)
            self._head = b""
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    """Cancel a pending timer, if there is one."""
    if timer is not None:
        timer.cancel()
