"""resource.Quantity: parsing, canonical form, exact comparison and arithmetic."""

from __future__ import annotations

from fractions import Fraction

import pytest

from hypernetes.resources import quantity as qty


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("100m", "100m"),
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("1", "1"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("0.0015", "1500u"),
        ("0.1n", "1n"),  # rounded up to the smallest amount
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("2048Mi", "2Gi"),
        ("1536Mi", "1536Mi"),
        ("1.5Gi", "1536Mi"),
        ("512Ki", "512Ki"),
        ("1024", "1024"),  # decimal input stays decimal
        ("0.5Ki", "512"),  # a fractional binary amount under 1024 prints in decimal
        ("1e3", "1e3"),
        ("1E3", "1e3"),
        ("1500e-3", "1500e-3"),
        ("5E", "5E"),
        ("10E", "9223372036854775807"),  # capped at the largest int64
        ("+1k", "1k"),
        ("-0.5", "-500m"),
        ("0m", "0"),
        ("00", "0"),
        (".5", "500m"),
        ("1.", "1"),
    ],
)
def test_canonical_form(text: str, canonical: str) -> None:
    assert qty.canonical(text) == canonical
    assert qty.canonical(canonical) == canonical  # canonical forms are stable


@pytest.mark.parametrize(("number", "canonical"), [(1, "1"), (0.5, "500m"), (1000.0, "1k")])
def test_json_numbers(number: float, canonical: str) -> None:
    assert qty.canonical(number) == canonical


@pytest.mark.parametrize("bad", ["", "abc", "1.5.5", "1 ", " 1", "x1", "1Mb"])
def test_malformed_quantities_have_kubes_message(bad: str) -> None:
    with pytest.raises(qty.QuantityError) as err:
        qty.parse(bad)
    assert str(err.value) in (qty.FORMAT_ERROR, qty.SUFFIX_ERROR)


def test_suffix_errors() -> None:
    for bad in ("1Kii", "1e", "--1", "1ki"):
        with pytest.raises(qty.QuantityError, match="unable to parse quantity's suffix"):
            qty.parse(bad)
    with pytest.raises(qty.QuantityError, match="regular expression"):
        qty.parse(True)  # type: ignore[arg-type]
    with pytest.raises(qty.QuantityError):
        qty.parse(float("nan"))


def test_exact_comparison_across_formats() -> None:
    assert qty.parse("1Gi") == qty.parse("1073741824")
    assert qty.parse("1G") < qty.parse("1Gi")
    assert qty.parse("500m") == qty.parse("0.5")
    assert qty.parse("1001m") > qty.parse("1")
    assert qty.parse("100m").value == Fraction(1, 10)
    assert len({qty.parse("1k"), qty.parse("1000")}) == 1


def test_arithmetic_keeps_the_left_format() -> None:
    total = qty.parse("1Gi") + qty.parse("512Mi")
    assert str(total) == "1536Mi"
    assert str(qty.parse("1") - qty.parse("1500m")) == "-500m"
    assert str(-qty.parse("2Ki")) == "-2Ki"
    assert qty.parse("3").sign() == 1 and qty.parse("-3").sign() == -1
    assert qty.parse("0").is_zero()


def test_rounding() -> None:
    assert qty.parse("1.5").milli_value() == 1500
    assert qty.parse("0.1m").milli_value() == 1  # rounded up
    assert qty.parse("1500m").int_value() == 2
    assert qty.parse("-1500m").int_value() == -2  # away from zero, as kube
    assert str(qty.parse("0.5m").round_up(-3)) == "1m"
    assert str(qty.parse("1.0001").round_up(-3)) == "1001m"
    assert str(qty.parse("2Gi").round_up(-3)) == "2Gi"


def test_quantities_are_immutable() -> None:
    q = qty.parse("1")
    with pytest.raises(AttributeError):
        q.value = Fraction(2)  # type: ignore[misc]
    assert repr(q) == "Quantity('1')"
