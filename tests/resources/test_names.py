"""Name, key and value syntax checks: kube's rules and kube's words."""

from __future__ import annotations

import pytest

from hypernetes.resources import names


@pytest.mark.parametrize("good", ["a", "my-name", "123-abc", "a" * 63])
def test_dns1123_label_accepts(good: str) -> None:
    assert names.is_dns1123_label(good) == []


def test_dns1123_label_messages() -> None:
    assert names.is_dns1123_label("a.b") == ["must not contain dots"]
    [msg] = names.is_dns1123_label("Bad_Name")
    assert msg == (
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )
    assert names.is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert len(names.is_dns1123_label("-" * 64)) == 2
    assert names.is_dns1123_label("")  # empty is not a label


def test_dns1123_subdomain() -> None:
    assert names.is_dns1123_subdomain("a.b-c.d") == []
    assert names.is_dns1123_subdomain("a..b")
    assert names.is_dns1123_subdomain("x" * 254)[0] == "must be no more than 253 characters"
    assert "(e.g. 'example.com', regex used" in names.is_dns1123_subdomain("A")[0]


def test_dns1035_label_must_start_with_a_letter() -> None:
    assert names.is_dns1035_label("abc-123") == []
    [msg] = names.is_dns1035_label("1abc")
    assert msg.startswith("a DNS-1035 label must consist of lower case alphanumeric characters")
    assert "'[a-z]([-a-z0-9]*[a-z0-9])?'" in msg


@pytest.mark.parametrize("good", ["a", "MyName", "example.com/My.Name-1", "a/b", "x" * 63])
def test_qualified_name_accepts(good: str) -> None:
    assert names.is_qualified_name(good) == []


@pytest.mark.parametrize(
    ("bad", "start"),
    [
        ("", "name part must be non-empty"),
        ("/a", "prefix part must be non-empty"),
        ("Example.com/a", "prefix part a lowercase RFC 1123 subdomain"),
        ("a/", "name part must be non-empty"),
        ("a/b/c", "a qualified name must consist of alphanumeric characters"),
        ("-a", "name part must consist of alphanumeric characters"),
        ("x" * 64, "name part must be no more than 63 characters"),
    ],
)
def test_qualified_name_rejects(bad: str, start: str) -> None:
    assert names.is_qualified_name(bad)[0].startswith(start)


def test_label_value() -> None:
    assert names.is_label_value("") == []
    assert names.is_label_value("my_value.1") == []
    assert names.is_label_value("-x")[0].startswith("a valid label must be an empty string")
    assert names.is_label_value("x" * 64) == ["must be no more than 63 characters"]


def test_ports() -> None:
    assert names.is_valid_port_num(1) == names.is_valid_port_num(65535) == []
    assert names.is_valid_port_num(0) == ["must be between 1 and 65535, inclusive"]
    assert names.is_valid_port_num(65536)
    assert names.is_valid_port_name("http") == []
    assert names.is_valid_port_name("HTTP") == [
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "must contain at least one letter (a-z)",
    ]
    assert names.is_valid_port_name("a--b") == ["must not contain consecutive hyphens"]
    assert names.is_valid_port_name("-ab") == ["must not begin or end with a hyphen"]
    assert names.is_valid_port_name("123") == ["must contain at least one letter (a-z)"]
    assert names.is_valid_port_name("a" * 16) == ["must be no more than 15 characters"]


def test_env_var_names_are_relaxed_as_in_kube_1_32() -> None:
    assert names.is_env_var_name("1PATH.with-dash and space") == []
    assert names.is_env_var_name("A=B") == [
        "a valid environment variable name must consist only of printable ASCII characters "
        "other than '='"
    ]
    assert names.is_env_var_name("caf\u00e9")
    assert names.is_env_var_name("tab\t")
    assert names.is_env_var_name("") == ["environment variable name must be non-empty"]


def test_config_map_keys() -> None:
    assert names.is_config_map_key("a.b_C-1") == []
    assert names.is_config_map_key(".") == ["must not be '.'"]
    assert names.is_config_map_key("..") == ["must not be '..'"]
    assert names.is_config_map_key("..a") == ["must not start with '..'"]
    [msg] = names.is_config_map_key("a b")
    assert msg == (
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
        "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
        "'[-._a-zA-Z0-9]+')"
    )


def test_path_segment_names_for_rbac() -> None:
    assert names.is_path_segment_name("system:controller:x") == []
    assert names.is_path_segment_name("..") == ["may not be '..'"]
    assert names.is_path_segment_name(".") == ["may not be '.'"]
    assert names.is_path_segment_name("a/b%c") == ["may not contain '/'", "may not contain '%'"]
    assert names.name_is_path_segment("..", True) == []  # a prefix may be '..'


def test_generate_name_prefix_may_end_with_a_dash() -> None:
    assert names.name_is_dns_subdomain("web-", True) == []
    assert names.name_is_dns_subdomain("web-", False)
    assert names.name_is_dns_label("web-", True) == []
    assert names.name_is_dns1035_label("web-", True) == []
    assert names.name_is_dns_label("Web-", True)


def test_network_values_and_percentages() -> None:
    assert names.is_ip("10.0.0.1") and names.is_ip("fd00::1")
    assert not names.is_ip("10.0.0.300")
    assert names.is_cidr("10.0.0.0/24") and names.is_cidr("fd00::/64")
    assert not names.is_cidr("10.0.0.0") and not names.is_cidr("10.0.0.0/33")
    assert names.is_percent("25%") and not names.is_percent("25")
    assert names.percent_errors("x%")[0].startswith(
        "a valid percent string must be a numeric string followed by an ending '%'"
    )
