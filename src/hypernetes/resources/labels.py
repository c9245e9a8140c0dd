"""Label selectors, with the syntax, semantics and error messages of kube's `labels` package.

Two forms exist in the Kubernetes API:

- the string form of `?labelSelector=` and `kubectl -l`: `a=b,c!=d,e in (x,y),f notin (z),g,!h`
  (also `k>3` and `k<3`, integer comparisons that kube accepts in the string form only);
- the `LabelSelector` object of workload specs: `{matchLabels: {...}, matchExpressions: [...]}`.

Both become a `Selector`: a conjunction of `Requirement`s. A `None` LabelSelector object selects
nothing, an empty one selects everything, as in kube's `metav1.LabelSelectorAsSelector`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hypernetes.resources import names

# Operators, spelled as kube's `selection.Operator` values.
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "in", "notin", "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"

_INT_RE = re.compile(r"[+-]?[0-9]+")
_OBJECT_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


class LabelSelectorError(ValueError):
    """A selector that kube would refuse; the message is kube's."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One condition on one label key."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op, present = self.operator, self.key in labels
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            return present and labels[self.key] in self.values
        if op in (NOT_EQUALS, NOT_IN):
            return not present or labels[self.key] not in self.values
        if op == EXISTS:
            return present
        if op == DOES_NOT_EXIST:
            return not present
        have, want = _go_int(labels.get(self.key, "")), _go_int(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op == GREATER_THAN else have < want

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


@dataclasses.dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; `nothing` is kube's `labels.Nothing()`."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _go_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): no spaces or underscores, unlike Python's int()."""
    if not _INT_RE.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)


# -- validation with kube's wording (the rules themselves are in `names`) -----------------------


def _go_quote(value: Any) -> str:
    """Render a bad value the way kube's `field.Error` does (`%q`, or `%#v` for lists)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if not value:
        return "[]string(nil)"
    return "[]string{" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value) + "}"


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_go_quote(value)}: {detail}"


def _aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _key_error(key: str, path: str) -> str | None:
    errs = names.is_qualified_name(key)
    return _invalid(path, key, "; ".join(errs)) if errs else None


def new_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """kube's `labels.NewRequirement`: validate and build one requirement."""
    vals = list(values)
    errors = [e for e in [_key_error(key, "key")] if e]
    if operator in (IN, NOT_IN) and not vals:
        errors.append(
            _invalid("values", vals, "for 'in', 'notin' operators, values set can't be empty")
        )
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(vals) != 1:
        errors.append(
            _invalid("values", vals, "exact-match compatibility requires one single value")
        )
    elif operator in (EXISTS, DOES_NOT_EXIST) and vals:
        errors.append(
            _invalid("values", vals, "values set must be empty for exists and does not exist")
        )
    elif operator in (GREATER_THAN, LESS_THAN):
        errors += _integer_errors(vals)
    elif operator not in (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, EXISTS, DOES_NOT_EXIST):
        errors.append(f'operator: Unsupported value: "{operator}"')
    for i, v in enumerate(vals):
        if errs := names.is_label_value(v):
            errors.append(_invalid(f"values[{i}][{key}]", v, "; ".join(errs)))
    if errors:
        raise LabelSelectorError(_aggregate(errors))
    return Requirement(key, operator, tuple(vals))


def _integer_errors(vals: list[str]) -> list[str]:
    errors = []
    if len(vals) != 1:
        errors.append(
            _invalid("values", vals, "for 'Gt', 'Lt' operators, exactly one value is required")
        )
    for i, v in enumerate(vals):
        if _go_int(v) is None:
            errors.append(
                _invalid(
                    f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"
                )
            )
    return errors


# -- the string form ------------------------------------------------------------------------------

_SPECIAL = "=!(),<>"
_WHITESPACE = " \t\r\n"
_KEYWORDS = {"in": "IN", "notin": "NOTIN"}
_SYMBOLS = {
    "!=": "NE",
    "==": "DEQ",
    "=": "EQ",
    "!": "NOT",
    "(": "OPEN",
    ")": "CLOSE",
    ",": "COMMA",
    ">": "GT",
    "<": "LT",
}


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal); kinds: ID, IN, NOTIN, symbol names, END, ERROR."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while True:
        while i < len(text) and text[i] in _WHITESPACE:
            i += 1
        if i == len(text):
            tokens.append(("END", ""))
            return tokens
        if text[i] in _SPECIAL:
            kind, literal = _lex_symbol(text, i)
        else:
            end = i
            while end < len(text) and text[end] not in _SPECIAL + _WHITESPACE:
                end += 1
            literal = text[i:end]
            kind = _KEYWORDS.get(literal, "ID")
        tokens.append((kind, literal))
        i += len(literal)


def _lex_symbol(text: str, i: int) -> tuple[str, str]:
    """The longest run of special characters that is still an operator, as kube's lexer."""
    best: tuple[str, str] | None = None
    end = i
    while end < len(text) and text[end] in _SPECIAL:
        end += 1
        literal = text[i:end]
        if literal in _SYMBOLS:
            best = (_SYMBOLS[literal], literal)
        elif best is not None:
            break
    if best is None:
        # Never reached with kube's operator set (every special char alone is a token).
        return ("ERROR", text[i:end])
    return best


class _Parser:
    """kube's recursive-descent selector parser, messages included."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        return self._as_value(self.tokens[self.pos], values)

    def take(self, values: bool = True) -> tuple[str, str]:
        self.pos += 1
        return self._as_value(self.tokens[self.pos - 1], values)

    @staticmethod
    def _as_value(token: tuple[str, str], values: bool) -> tuple[str, str]:
        # In value position, the words `in` and `notin` are plain identifiers.
        if values and token[0] in ("IN", "NOTIN"):
            return ("ID", token[1])
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind == "END":
                return requirements
            if kind not in ("ID", "NOT"):
                raise LabelSelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )
            try:
                requirements.append(self.requirement())
            except LabelSelectorError as exc:
                raise LabelSelectorError(f"unable to parse requirement: {exc}") from None
            kind, literal = self.take()
            if kind == "END":
                return requirements
            if kind != "COMMA":
                raise LabelSelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.peek()
            if kind not in ("ID", "NOT"):
                raise LabelSelectorError(f"found '{literal}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = self.peek()[0] == "NOT"
        if negated:
            self.take()
        kind, key = self.take()
        if kind != "ID":
            raise LabelSelectorError(f"found '{key}', expected: identifier")
        if error := _key_error(key, "<nil>"):
            raise LabelSelectorError(error)
        if negated:
            # `!key` takes no operator; whatever follows is the parser's business.
            return new_requirement(key, DOES_NOT_EXIST, [])
        if self.peek()[0] in ("END", "COMMA"):
            return new_requirement(key, EXISTS, [])
        operator = self.operator()
        values = self.set_values() if operator in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def operator(self) -> str:
        kind, literal = self.take(values=False)
        ops = {"IN": IN, "NOTIN": NOT_IN, "EQ": EQUALS, "DEQ": DOUBLE_EQUALS}
        ops |= {"NE": NOT_EQUALS, "GT": GREATER_THAN, "LT": LESS_THAN}
        if kind not in ops:
            raise LabelSelectorError(f"found '{literal}', expected: '=', '!=', '==', 'in', notin'")
        return ops[kind]

    def exact_value(self) -> set[str]:
        if self.peek()[0] in ("END", "COMMA"):
            return {""}
        kind, literal = self.take()
        if kind != "ID":
            raise LabelSelectorError(f"found '{literal}', expected: identifier")
        return {literal}

    def set_values(self) -> set[str]:
        kind, literal = self.take()
        if kind != "OPEN":
            raise LabelSelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == "CLOSE":
            self.take()
            return {""}
        if kind not in ("ID", "COMMA"):
            raise LabelSelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values = self.identifiers()
        if self.take()[0] != "CLOSE":
            raise LabelSelectorError(f"found '{literal}', expected: ')'")
        return values

    def identifiers(self) -> set[str]:
        """A comma-separated list in which empty items mean the empty value, as kube's."""
        values: set[str] = set()
        while True:
            kind, literal = self.take()
            if kind == "ID":
                values.add(literal)
                kind2, literal2 = self.peek()
                if kind2 == "CLOSE":
                    return values
                if kind2 != "COMMA":
                    raise LabelSelectorError(f"found '{literal2}', expected: ',' or ')'")
            elif kind == "COMMA":
                if not values:
                    values.add("")
                kind2 = self.peek()[0]
                if kind2 == "CLOSE":
                    values.add("")
                    return values
                if kind2 == "COMMA":
                    self.take()
                    values.add("")
            else:
                raise LabelSelectorError(f"found '{literal}', expected: ',', or identifier")


def parse(selector: str) -> Selector:
    """Parse the string form; the empty string selects everything."""
    requirements = _Parser(selector).parse()
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def from_label_selector(obj: Mapping[str, Any] | None) -> Selector:
    """kube's `metav1.LabelSelectorAsSelector` for a LabelSelector object."""
    if obj is None:
        return NOTHING
    match_labels = obj.get("matchLabels") or {}
    expressions = obj.get("matchExpressions") or []
    requirements = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in expressions:
        operator = expr.get("operator", "")
        if operator not in _OBJECT_OPERATORS:
            raise LabelSelectorError(f'"{operator}" is not a valid label selector operator')
        values = expr.get("values") or []
        requirements.append(
            new_requirement(expr.get("key", ""), _OBJECT_OPERATORS[operator], values)
        )
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def selector_string(obj: Mapping[str, Any] | None) -> str:
    """The string form of a LabelSelector object (what a Scale's `status.selector` carries)."""
    return str(from_label_selector(obj))


def format_labels(labels: Mapping[str, str] | None) -> str:
    """kube's `labels.FormatLabels`: sorted `k=v` pairs, or `<none>`."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(obj: Mapping[str, Any] | None) -> str:
    """kube's `metav1.FormatLabelSelector`, as printed in `-o wide` SELECTOR columns."""
    try:
        text = selector_string(obj)
    except LabelSelectorError:
        return "<error>"
    return text or "<none>"


def matches(
    selector: Selector | str | Mapping[str, Any] | None, labels: Mapping[str, str] | None
) -> bool:
    """Whether `labels` satisfy `selector` (a parsed Selector, a string, or a LabelSelector)."""
    if isinstance(selector, str):
        selector = parse(selector)
    elif not isinstance(selector, Selector):
        selector = from_label_selector(selector)
    return selector.matches(labels)
