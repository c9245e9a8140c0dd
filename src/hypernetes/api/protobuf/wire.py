"""The protobuf wire format: reading and writing tagged fields.

Only what Kubernetes messages use: varints, 64-bit and 32-bit fixed values and
length-delimited fields (groups are refused). Reading is strict: a truncated
varint, a length running past the end, or a varint longer than ten bytes is a
`ProtobufError`, never an IndexError.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT = 0
I64 = 1
LEN = 2
I32 = 5

_MASK64 = (1 << 64) - 1


class ProtobufError(ValueError):
    """A protobuf body that cannot be decoded (or an object that cannot be encoded)."""


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at data[pos:end] and the position after it."""
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def fields(
    data: bytes, pos: int = 0, end: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, a, b) for each field of a message.

    For VARINT, I64 and I32 fields `a` is the value and `b` is 0; for LEN
    fields data[a:b] is the payload.
    """
    end = len(data) if end is None else end
    while pos < end:
        key, pos = read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise ProtobufError(f"invalid field number {number}")
        if wire == VARINT:
            value, pos = read_varint(data, pos, end)
            yield number, wire, value, 0
        elif wire == LEN:
            length, pos = read_varint(data, pos, end)
            if length > end - pos:
                raise ProtobufError(f"field {number}: length {length} runs past the end")
            yield number, wire, pos, pos + length
            pos += length
        elif wire == I64:
            if pos + 8 > end:
                raise ProtobufError(f"field {number}: truncated 64-bit value")
            yield number, wire, int.from_bytes(data[pos : pos + 8], "little"), 0
            pos += 8
        elif wire == I32:
            if pos + 4 > end:
                raise ProtobufError(f"field {number}: truncated 32-bit value")
            yield number, wire, int.from_bytes(data[pos : pos + 4], "little"), 0
            pos += 4
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire}")


def signed(value: int, bits: int) -> int:
    """Two's-complement reading of the low `bits` bits (Go's int32(x) / int64(x))."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def zigzag(value: int, bits: int) -> int:
    return ((value << 1) ^ (value >> (bits - 1))) & ((1 << bits) - 1)


def as_double(value: int) -> float:
    return float(struct.unpack("<d", value.to_bytes(8, "little"))[0])


def as_float(value: int) -> float:
    return float(struct.unpack("<f", value.to_bytes(4, "little"))[0])


class Writer:
    """Appends tagged fields to a growing buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def varint(self, value: int) -> None:
        value &= _MASK64
        while value >= 0x80:
            self.buf.append((value & 0x7F) | 0x80)
            value >>= 7
        self.buf.append(value)

    def key(self, number: int, wire: int) -> None:
        self.varint(number << 3 | wire)

    def varint_field(self, number: int, value: int) -> None:
        self.key(number, VARINT)
        self.varint(value)

    def bytes_field(self, number: int, payload: bytes) -> None:
        self.key(number, LEN)
        self.varint(len(payload))
        self.buf += payload

    def fixed64_field(self, number: int, payload: bytes) -> None:
        self.key(number, I64)
        self.buf += payload

    def fixed32_field(self, number: int, payload: bytes) -> None:
        self.key(number, I32)
        self.buf += payload

    def getvalue(self) -> bytes:
        return bytes(self.buf)
