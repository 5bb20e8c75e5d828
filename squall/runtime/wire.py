"""Framing between a node and its function instances: a 4-byte length, then a pickle.

Both ends are the same trusted code base (the instance is a fork of the app), so pickle is
safe here and faster than JSON for the event dicts that cross on every invocation.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any

HEADER = struct.Struct("!I")


def encode(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def send(sock: socket.socket, message: Any) -> None:
    sock.sendall(encode(message))


def recv(sock: socket.socket) -> Any:
    """Read one message; EOFError when the other end has gone."""
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    return pickle.loads(_recv_exact(sock, size))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


async def read(reader: asyncio.StreamReader) -> Any:
    """Read one message; asyncio.IncompleteReadError when the instance has gone."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))
