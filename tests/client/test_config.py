"""Kubeconfig loading: inline and file credentials, contexts, merging, exec plugins."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
from pathlib import Path

import pytest
import yaml

from hypernetes.client import Config, ConfigError, load_kubeconfig
from hypernetes.client.config import parse_time

from .conftest import Certs, b64, write_kubeconfig

PLUGIN = Path(__file__).with_name("exec_plugin.py")


def exec_user(state: Path, mode: str, **extra: object) -> dict[str, object]:
    conf: dict[str, object] = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(PLUGIN), str(state), mode],
        "interactiveMode": "Never",
        **extra,
    }
    return {"exec": conf}


def test_inline_data_and_context_namespace(tmp_path: Path, pki: Certs) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        cluster={
            "server": "https://127.0.0.1:6443/",
            "certificate-authority-data": b64(pki.ca.cert_pem),
        },
        user={
            "client-certificate-data": b64(pki.client.cert_pem),
            "client-key-data": b64(pki.client.key_pem),
        },
        namespace="shop",
    )
    config = load_kubeconfig(path)
    assert config.server == "https://127.0.0.1:6443"  # trailing slash dropped
    assert config.namespace == "shop"
    assert config.ca_pem == pki.ca.cert_pem
    assert config.client_cert_pem == pki.client.cert_pem
    assert config.client_key_pem == pki.client.key_pem
    context = config.ssl_context((pki.client.cert_pem, pki.client.key_pem))
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "test-ca"),),) for c in context.get_ca_certs())


def test_file_paths_are_relative_to_the_kubeconfig(tmp_path: Path, pki: Certs) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.crt").write_bytes(pki.ca.cert_pem)
    (tmp_path / "pki" / "me.crt").write_bytes(pki.client.cert_pem)
    (tmp_path / "pki" / "me.key").write_bytes(pki.client.key_pem)
    (tmp_path / "token").write_text("s3cret\n")
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write_kubeconfig(
        sub / "config",
        cluster={"server": "https://h:1", "certificate-authority": "../pki/ca.crt"},
        user={
            "client-certificate": "../pki/me.crt",
            "client-key": str(tmp_path / "pki" / "me.key"),
            "tokenFile": "../token",
        },
    )
    config = load_kubeconfig(path)
    assert config.ca_pem == pki.ca.cert_pem
    assert config.client_cert_pem == pki.client.cert_pem
    assert config.namespace == "default"
    creds = asyncio.run(config.credentials())
    assert creds.token == "s3cret"
    assert creds.certificate == (pki.client.cert_pem, pki.client.key_pem)


def test_context_selection_and_errors(tmp_path: Path) -> None:
    doc = {
        "current-context": "a",
        "clusters": [
            {"name": "ca", "cluster": {"server": "https://a:1"}},
            {"name": "cb", "cluster": {"server": "https://b:2", "insecure-skip-tls-verify": True}},
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "a", "context": {"cluster": "ca", "user": "u"}},
            {"name": "b", "context": {"cluster": "cb", "user": "u", "namespace": "x"}},
            {"name": "broken", "context": {"cluster": "nope", "user": "u"}},
            {"name": "nouser", "context": {"cluster": "ca", "user": "ghost"}},
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    assert load_kubeconfig(path).server == "https://a:1"
    b = load_kubeconfig(path, context="b")
    assert (b.server, b.namespace, b.insecure_skip_tls_verify) == ("https://b:2", "x", True)
    context = b.ssl_context(None)
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    with pytest.raises(ConfigError, match="context 'missing' not found"):
        load_kubeconfig(path, context="missing")
    with pytest.raises(ConfigError, match="cluster 'nope' not found"):
        load_kubeconfig(path, context="broken")
    with pytest.raises(ConfigError, match="user 'ghost' not found"):
        load_kubeconfig(path, context="nouser")


@pytest.mark.parametrize(
    ("cluster", "user", "message"),
    [
        ({"server": "https://h:1", "certificate-authority-data": "%%%"}, {}, "not valid base64"),
        ({}, {}, "no server"),
        ({"server": "ftp://h"}, {}, "http"),
        ({"server": "https://h:1", "certificate-authority": "missing.crt"}, {}, "cannot read"),
        ({"server": "https://h:1"}, {"client-certificate-data": b64(b"x")}, "together"),
        ({"server": "https://h:1"}, {"exec": {"command": "x"}}, "apiVersion"),
        (
            {"server": "https://h:1"},
            {"exec": {"command": "x", "apiVersion": "client.authentication.k8s.io/v1"}},
            "interactiveMode",
        ),
    ],
)
def test_invalid_kubeconfigs(tmp_path: Path, cluster: dict, user: dict, message: str) -> None:
    path = write_kubeconfig(tmp_path / "config", cluster=cluster, user=user)
    with pytest.raises(ConfigError, match=message):
        load_kubeconfig(path)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "absent")
    (tmp_path / "bad").write_text("clusters: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_kubeconfig(tmp_path / "bad")
    (tmp_path / "list").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="not a mapping"):
        load_kubeconfig(tmp_path / "list")
    (tmp_path / "nocontext").write_text("clusters: []\n")
    with pytest.raises(ConfigError, match="no current-context"):
        load_kubeconfig(tmp_path / "nocontext")


def test_invalid_ca_data_is_reported(pki: Certs) -> None:
    config = Config("https://h:1", ca_pem=b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(ConfigError, match="certificate authority"):
        config.ssl_context(None)
    config = Config("https://h:1")
    with pytest.raises(ConfigError, match="client certificate"):
        config.ssl_context((pki.client.cert_pem, pki.ca.key_pem))  # key of another cert


def test_kubeconfig_env_merging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = {
        "current-context": "one",
        "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://first:1"}}],
    }
    second = {
        "current-context": "ignored",
        "clusters": [{"name": "c", "cluster": {"server": "https://second:2"}}],
        "users": [{"name": "u", "user": {"token": "from-second"}}],
    }
    (tmp_path / "a").write_text(yaml.safe_dump(first))
    (tmp_path / "b").write_text(yaml.safe_dump(second))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'missing'}:{tmp_path / 'b'}")
    config = load_kubeconfig()
    assert config.server == "https://first:1"  # the first file naming an entry wins
    assert config.token == "from-second"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        load_kubeconfig()


def calls(state: Path) -> list[dict]:
    path = state / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_exec_plugin_token_is_cached_until_it_expires(tmp_path: Path, pki: Certs) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://h:1", "certificate-authority-data": b64(pki.ca.cert_pem)},
        user=exec_user(
            tmp_path,
            "token",
            env=[{"name": "EXPIRES_IN", "value": "3600"}, {"name": "TOKEN_PREFIX", "value": "a"}],
            provideClusterInfo=True,
        ),
    )
    config = load_kubeconfig(path)
    first = await config.credentials()
    again = await asyncio.gather(*(config.credentials() for _ in range(5)))
    assert first.token == "a-1"
    assert {c.token for c in again} == {"a-1"}  # cached: the plugin ran once
    assert len(calls(tmp_path)) == 1
    info = calls(tmp_path)[0]
    assert info["apiVersion"] == "client.authentication.k8s.io/v1"
    assert info["kind"] == "ExecCredential"
    assert info["spec"]["interactive"] is False
    cluster = info["spec"]["cluster"]
    assert cluster["server"] == "https://h:1"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pki.ca.cert_pem
    # A 401 drops the cached token: the next request runs the plugin again.
    assert config.invalidate_credentials()
    assert (await config.credentials()).token == "a-2"


async def test_exec_plugin_reruns_after_expiry(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://h:1"},
        user=exec_user(tmp_path, "token", env=[{"name": "EXPIRES_IN", "value": "-1"}]),
    )
    config = load_kubeconfig(path)
    assert (await config.credentials()).token == "tok-1"
    assert (await config.credentials()).token == "tok-2"  # already expired: not reused
    assert "cluster" not in calls(tmp_path)[0]["spec"]  # provideClusterInfo not set


async def test_exec_plugin_without_expiry_is_kept(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config", cluster={"server": "https://h:1"}, user=exec_user(tmp_path, "token")
    )
    config = load_kubeconfig(path)
    assert (await config.credentials()).token == "tok-1"
    assert (await config.credentials()).token == "tok-1"
    assert config.exec_plugin is not None and config.exec_plugin.runs == 1


async def test_exec_plugin_client_certificate(tmp_path: Path, pki: Certs) -> None:
    (tmp_path / "client.crt").write_bytes(pki.client.cert_pem)
    (tmp_path / "client.key").write_bytes(pki.client.key_pem)
    path = write_kubeconfig(
        tmp_path / "config", cluster={"server": "https://h:1"}, user=exec_user(tmp_path, "cert")
    )
    creds = await load_kubeconfig(path).credentials()
    assert creds.token is None
    assert creds.certificate == (pki.client.cert_pem, pki.client.key_pem)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("fail", "exit code 3: the identity service said no"),
        ("garbage", "did not print JSON"),
        ("wrong-version", "expected 'client.authentication.k8s.io/v1'"),
        ("empty", "neither a token nor a client certificate"),
    ],
)
async def test_exec_plugin_failures(tmp_path: Path, mode: str, message: str) -> None:
    path = write_kubeconfig(
        tmp_path / "config", cluster={"server": "https://h:1"}, user=exec_user(tmp_path, mode)
    )
    with pytest.raises(ConfigError, match=message):
        await load_kubeconfig(path).credentials()


async def test_exec_plugin_missing_command_shows_install_hint(tmp_path: Path) -> None:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "./no-such-plugin",
            "installHint": "install it with: apt install no-such-plugin",
        }
    }
    path = write_kubeconfig(tmp_path / "config", cluster={"server": "https://h:1"}, user=user)
    config = load_kubeconfig(path)
    assert config.exec_plugin is not None
    assert config.exec_plugin.command == str(tmp_path / "no-such-plugin")  # relative to the file
    with pytest.raises(ConfigError, match="apt install no-such-plugin"):
        await config.credentials()


async def test_exec_plugin_interactive_always_is_refused(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        cluster={"server": "https://h:1"},
        user=exec_user(tmp_path, "token", interactiveMode="Always"),
    )
    with pytest.raises(ConfigError, match="interactive"):
        await load_kubeconfig(path).credentials()
    assert calls(tmp_path) == []


def test_parse_time() -> None:
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time("1970-01-01T00:00:01.500000Z") == 1.5
    with pytest.raises(ConfigError):
        parse_time("yesterday")
