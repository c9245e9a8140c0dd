"""Kubernetes `resource.Quantity`: parsing, exact arithmetic, comparison and canonical form.

A quantity is a decimal or binary number with an optional suffix: `100m`, `1.5`, `2Gi`, `1e3`,
`500M`. kube-apiserver stores quantities in a canonical string form (`0.5` becomes `500m`,
`2048Mi` becomes `2Gi`), so clients reading back an object see that form; the scheduler and
quota compare them exactly. Values here are `fractions.Fraction`s, so no precision is lost.

Public API:

- `parse(value) -> Quantity`: a string (or a JSON number) as kube's `resource.ParseQuantity`
  reads it; raises `QuantityError` with kube's message on bad input.
- `Quantity`: immutable; `value` (Fraction), `format` (`BinarySI`, `DecimalSI` or
  `DecimalExponent`, kept from the input as kube does), comparisons, `+`, `-`, unary `-`,
  `str()` (the canonical form), `milli_value()`, `int_value()` (both rounded up like kube's
  `MilliValue`/`Value`), `round_up(scale)` (kube's `RoundUp`, used to round resource lists to
  milli precision), `is_zero()`, `sign()`.
- `canonical(value) -> str`: shorthand for `str(parse(value))`; `canonical_milli(value)` also
  rounds up to milli precision, as kube does for resource lists.
- `FORMAT_ERROR`: kube's message for a malformed quantity.
"""

from __future__ import annotations

import functools
from fractions import Fraction

BINARY_SI = "BinarySI"
DECIMAL_SI = "DecimalSI"
DECIMAL_EXPONENT = "DecimalExponent"

FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_ERROR = "unable to parse quantity's suffix"
NUMERIC_ERROR = "unable to parse numeric part of quantity"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_SUFFIXES |= {"P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {e // 10: s for s, e in _BINARY_SUFFIXES.items()} | {0: ""}
_SUFFIX_CHARS = set("eEinumkKMGTP")
_DIGITS = set("0123456789")
_NANO = Fraction(1, 10**9)
# kube caps DecimalSI and BinarySI quantities at the largest int64.
_MAX = Fraction(2**63 - 1)


class QuantityError(ValueError):
    """A string kube's `ParseQuantity` would refuse; the message is kube's."""


@functools.total_ordering
class Quantity:
    """An exact quantity with the format it was written in."""

    __slots__ = ("format", "value")

    value: Fraction
    format: str

    def __init__(self, value: Fraction | int, format: str = DECIMAL_SI) -> None:
        object.__setattr__(self, "value", Fraction(value))
        object.__setattr__(self, "format", format)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Quantity is immutable")

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def __str__(self) -> str:
        return _format(self.value, self.format)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Quantity):
            return self.value == other.value
        return NotImplemented

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __neg__(self) -> Quantity:
        return Quantity(-self.value, self.format)

    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)

    def is_zero(self) -> bool:
        return self.value == 0

    def milli_value(self) -> int:
        """The value in thousandths, rounded up (away from zero) as kube's `MilliValue`."""
        return _ceil_away(self.value * 1000)

    def int_value(self) -> int:
        """The value rounded up (away from zero) to an integer, as kube's `Value`."""
        return _ceil_away(self.value)

    def round_up(self, scale: int) -> Quantity:
        """Round away from zero to a multiple of 10**scale (kube's `RoundUp`)."""
        unit = Fraction(10) ** scale
        return Quantity(_ceil_away(self.value / unit) * unit, self.format)


def _ceil_away(x: Fraction) -> int:
    """Round away from zero to an integer."""
    n = -(-abs(x.numerator) // x.denominator)
    return n if x >= 0 else -n


def parse(value: str | int | float) -> Quantity:
    """Parse like kube's `ParseQuantity` (JSON numbers are read from their literal text)."""
    if isinstance(value, bool):
        raise QuantityError(FORMAT_ERROR)
    return _parse_text(value if isinstance(value, str) else _number_text(value))


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Quantity:
    # Cached: quantities are immutable, and objects repeat the same few strings ("100m").
    if not text:
        raise QuantityError(FORMAT_ERROR)
    negative, number, suffix = _split(text)
    base, exponent, fmt = _interpret(suffix)
    try:
        amount = Fraction(number) if number not in ("", ".") else Fraction(0)
    except ValueError:
        raise QuantityError(NUMERIC_ERROR) from None
    amount *= Fraction(base) ** exponent
    # kube rounds non-zero values up to the smallest representable amount (1n).
    amount = Fraction(_ceil_away(amount / _NANO)) * _NANO
    if fmt != DECIMAL_EXPONENT and amount > _MAX:
        amount = _MAX
    return Quantity(-amount if negative else amount, fmt)


def canonical(value: str | int | float) -> str:
    """The canonical string kube stores for `value`."""
    return str(parse(value))


@functools.lru_cache(maxsize=4096)
def canonical_milli(value: str) -> str:
    """The canonical string of `value` rounded up to milli precision (kube's resource lists)."""
    return str(parse(value).round_up(-3))


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise QuantityError(FORMAT_ERROR)
    return repr(value)


def _split(text: str) -> tuple[bool, str, str]:
    """(negative, unsigned number, suffix), following kube's `parseQuantityString`."""
    pos, end = 0, len(text)
    negative = text[0] == "-"
    if text[0] in "+-":
        pos = 1
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end and text[pos] == ".":
        pos += 1
        while pos < end and text[pos] in _DIGITS:
            pos += 1
    number = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_ERROR)
    return negative, number, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix, as kube's `suffixHandler.interpret`."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:], 10), DECIMAL_EXPONENT
        except ValueError:
            pass
    raise QuantityError(SUFFIX_ERROR)


def _format(value: Fraction, fmt: str) -> str:
    """kube's `Quantity.String` (`CanonicalizeBytes`)."""
    if fmt == BINARY_SI and (-1024 < value < 1024 or value.denominator != 1):
        fmt = DECIMAL_SI  # small or fractional binary amounts read better in decimal
    if fmt == BINARY_SI:
        mantissa, power = _remove_factors(value.numerator, 1024)
        return f"{mantissa}{_BINARY_BY_EXPONENT[power]}"
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if exponent in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
    return f"{mantissa}e{exponent}"


def _decimal_parts(value: Fraction) -> tuple[int, int]:
    """An integer mantissa and an exponent that is a multiple of 3."""
    if value == 0:
        return 0, 0
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    mantissa, tens = _remove_factors(value.numerator, 10)
    exponent += tens
    shift = exponent % 3  # floor to a multiple of 3, as kube does
    return mantissa * 10**shift, exponent - shift


def _remove_factors(n: int, base: int) -> tuple[int, int]:
    if n == 0:
        return 0, 0
    times = 0
    while n % base == 0:
        n //= base
        times += 1
    return n, times
