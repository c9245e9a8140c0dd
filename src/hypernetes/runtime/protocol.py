"""The host side of the hyperstart wire format (guest/PROTOCOL.md).

A frame is a 12-byte header -- magic "HS", version, type, stream id (u32 BE),
payload length (u32 BE) -- then the payload: a MessagePack map for requests,
responses and events, raw bytes for stream data (empty = end of stream).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

MAGIC = b"HS"
VERSION = 1
HEADER = struct.Struct(">2sBBII")
MAX_PAYLOAD = 1 << 20
DATA_CHUNK = 16384  # the guest writes at most this much per frame, too

REQUEST, RESPONSE, EVENT, DATA = 1, 2, 3, 4


@dataclass
class Frame:
    type: int
    stream: int
    payload: bytes

    def message(self) -> dict[str, Any]:
        msg = msgpack.unpackb(self.payload, raw=False)
        if not isinstance(msg, dict):
            raise ValueError("frame payload is not a map")
        return msg


def encode(type_: int, payload: bytes, stream: int = 0) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("frame payload too large")
    return HEADER.pack(MAGIC, VERSION, type_, stream, len(payload)) + payload


def encode_message(type_: int, message: dict[str, Any]) -> bytes:
    return encode(type_, msgpack.packb(message, use_bin_type=True))


class Decoder:
    """Incremental frame parser; skips garbage up to the next valid header
    (after a host reconnects it may see the tail of a frame it missed)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            magic, version, type_, stream, length = HEADER.unpack_from(self._buf)
            if magic != MAGIC or version != VERSION or not 1 <= type_ <= 4 or length > MAX_PAYLOAD:
                start = self._buf.find(MAGIC, 1)
                drop = start if start > 0 else len(self._buf) - 1
                del self._buf[:drop]
                self.skipped += drop
                continue
            if len(self._buf) < HEADER.size + length:
                break
            payload = bytes(self._buf[HEADER.size : HEADER.size + length])
            del self._buf[: HEADER.size + length]
            frames.append(Frame(type_, stream, payload))
        return frames
