"""Label selectors: kube's string syntax, the LabelSelector object form, matching, messages."""

from __future__ import annotations

import pytest

from hypernetes.resources import labels
from hypernetes.resources.labels import LabelSelectorError

NAME_RULES = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULES = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("  app = web , tier != db ", "app=web,tier!=db"),
        ("env in (prod, dev)", "env in (dev,prod)"),
        ("env notin (qa)", "env notin (qa)"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("!gpu", "!gpu"),
        ("gpu", "gpu"),
        ("a=", "a="),
        ("in in (in, notin)", "in in (in,notin)"),
        ("k>3,k<10", "k>3,k<10"),
        ("example.com/team=x", "example.com/team=x"),
        ("z=1,a=2", "a=2,z=1"),
    ],
)
def test_parse_and_canonical_string(text: str, canonical: str) -> None:
    assert str(labels.parse(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a b", "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("a=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("-a", f'unable to parse requirement: <nil>: Invalid value: "-a": {NAME_RULES}'),
        ("a=-b", f'unable to parse requirement: values[0][a]: Invalid value: "-b": {VALUE_RULES}'),
        (
            "k>x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "a" * 64,
            f'unable to parse requirement: <nil>: Invalid value: "{"a" * 64}": '
            "name part must be no more than 63 characters",
        ),
        (
            "/a",
            'unable to parse requirement: <nil>: Invalid value: "/a": '
            "prefix part must be non-empty",
        ),
    ],
)
def test_parse_errors_carry_kube_messages(text: str, message: str) -> None:
    with pytest.raises(LabelSelectorError) as err:
        labels.parse(text)
    assert str(err.value) == message


def test_bad_prefix_and_too_many_slashes() -> None:
    with pytest.raises(LabelSelectorError, match="prefix part a lowercase RFC 1123 subdomain"):
        labels.parse("Example.com/x")
    with pytest.raises(LabelSelectorError, match="a qualified name must consist of"):
        labels.parse("a/b/c")


LABELS = {"app": "web", "tier": "frontend", "replicas": "3"}


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db)", False),
        ("missing in (x)", False),
        ("app notin (db)", True),
        ("missing notin (x)", True),
        ("app notin (web)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=frontend", True),
        ("app=web,tier=backend", False),
        ("replicas>2", True),
        ("replicas<3", False),
        ("app>1", False),  # not an integer label: never matches
        ("replicas>02", True),
        ("replicas<1_0", None),  # Go's ParseInt refuses what Python's int() takes
        ("missing>1", False),
        ("missing=", False),
    ],
)
def test_matches(text: str, matched: bool | None) -> None:
    if matched is None:
        with pytest.raises(LabelSelectorError, match="the value must be an integer"):
            labels.parse(text)
        return
    assert labels.matches(text, LABELS) is matched
    assert labels.parse(text).matches(LABELS) is matched


def test_matches_none_labels() -> None:
    assert labels.matches("", None)
    assert labels.matches("!a", None)
    assert not labels.matches("a", None)


def test_label_selector_object_form() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["qa"]},
            {"key": "replicas", "operator": "Exists"},
        ],
    }
    parsed = labels.from_label_selector(selector)
    assert str(parsed) == "app=web,!canary,env notin (qa),replicas,tier in (edge,frontend)"
    assert parsed.matches(LABELS)
    assert not parsed.matches({**LABELS, "canary": "yes"})
    assert labels.matches(selector, LABELS)
    assert labels.selector_string({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"


def test_label_selector_object_edge_cases() -> None:
    assert labels.from_label_selector(None) is labels.NOTHING
    assert not labels.matches(None, {})
    assert labels.from_label_selector({}).empty()
    assert labels.matches({}, {"any": "thing"})
    assert labels.selector_string(None) == ""
    assert labels.format_label_selector(None) == "<none>"
    assert labels.format_label_selector({"matchLabels": {"a": "b"}}) == "a=b"
    bad = {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}
    assert labels.format_label_selector(bad) == "<error>"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
            '"Equals" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []string(nil): "
            "for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]},
            'values: Invalid value: []string{"x", "y"}: '
            "values set must be empty for exists and does not exist",
        ),
        ({"matchLabels": {"bad key": "v"}}, f'key: Invalid value: "bad key": {NAME_RULES}'),
        (
            {"matchLabels": {"k": "bad value"}},
            f'values[0][k]: Invalid value: "bad value": {VALUE_RULES}',
        ),
        (
            {"matchExpressions": [{"key": "-k", "operator": "In", "values": ["-v"]}]},
            f'[key: Invalid value: "-k": {NAME_RULES}, '
            f'values[0][-k]: Invalid value: "-v": {VALUE_RULES}]',
        ),
    ],
)
def test_label_selector_object_errors(selector: dict[str, object], message: str) -> None:
    with pytest.raises(LabelSelectorError) as err:
        labels.from_label_selector(selector)
    assert str(err.value) == message


def test_format_labels() -> None:
    assert labels.format_labels(None) == "<none>"
    assert labels.format_labels({}) == "<none>"
    assert labels.format_labels({"b": "2", "a": "1"}) == "a=1,b=2"


def test_new_requirement_checks_operator_arity() -> None:
    with pytest.raises(
        LabelSelectorError, match="exact-match compatibility requires one single value"
    ):
        labels.new_requirement("a", labels.EQUALS, ["x", "y"])
    with pytest.raises(LabelSelectorError, match="exactly one value is required"):
        labels.new_requirement("a", labels.GREATER_THAN, [])
    with pytest.raises(LabelSelectorError, match='Unsupported value: "~"'):
        labels.new_requirement("a", "~", [])
    assert str(labels.new_requirement("a", labels.NOT_IN, ["y", "x"])) == "a notin (x,y)"
