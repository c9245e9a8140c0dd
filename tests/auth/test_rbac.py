"""RBAC rule evaluation and the escalation check."""

from __future__ import annotations

from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.rbac import RBAC, covers, rule_allows

ALICE = User("alice", ("devs", "system:authenticated"))


def test_rule_matching_groups_resources_subresources_names_verbs() -> None:
    rule = {
        "apiGroups": ["apps"],
        "resources": ["deployments", "deployments/scale"],
        "verbs": ["get", "update"],
        "resourceNames": ["web"],
    }
    ok = Attributes(
        verb="update", group="apps", resource="deployments", subresource="scale", name="web"
    )
    assert rule_allows(rule, ok)
    assert not rule_allows(
        rule,
        Attributes(
            verb="update", group="apps", resource="deployments", subresource="status", name="web"
        ),
    )
    assert not rule_allows(
        rule, Attributes(verb="get", group="apps", resource="deployments", name="other")
    )
    assert not rule_allows(
        rule, Attributes(verb="delete", group="apps", resource="deployments", name="web")
    )
    assert not rule_allows(
        rule, Attributes(verb="get", group="", resource="deployments", name="web")
    )
    star = {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}
    assert rule_allows(star, ok)


def test_non_resource_urls_with_prefix_wildcard() -> None:
    rule = {"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}
    assert rule_allows(rule, Attributes(verb="get", path="/apis/apps/v1"))
    assert rule_allows(rule, Attributes(verb="get", path="/version"))
    assert not rule_allows(rule, Attributes(verb="get", path="/versionx"))
    assert not rule_allows(rule, Attributes(verb="post", path="/version"))


def _rbac() -> RBAC:
    roles = {
        ("team", "reader"): {
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
        }
    }
    cluster_roles = {
        ("", "node-viewer"): {
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
        },
        ("", "cm-editor"): {
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]
        },
    }
    role_bindings = {
        ("team", "r"): {
            "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [{"kind": "User", "name": "alice"}],
        },
        ("team", "c"): {
            "roleRef": {"kind": "ClusterRole", "name": "cm-editor"},
            "subjects": [{"kind": "Group", "name": "devs"}],
        },
        ("team", "sa"): {
            "roleRef": {"kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}],
        },
    }
    cluster_bindings = {
        ("", "n"): {
            "roleRef": {"kind": "ClusterRole", "name": "node-viewer"},
            "subjects": [{"kind": "User", "name": "alice"}],
        }
    }
    return RBAC(
        lambda: roles, lambda: cluster_roles, lambda: role_bindings, lambda: cluster_bindings
    )


def test_bindings_grant_within_their_namespace_only() -> None:
    rbac = _rbac()
    pods = Attributes(verb="list", resource="pods", namespace="team")
    assert rbac.allowed(ALICE, pods)
    assert not rbac.allowed(ALICE, Attributes(verb="list", resource="pods", namespace="other"))
    assert rbac.allowed(ALICE, Attributes(verb="delete", resource="configmaps", namespace="team"))
    assert not rbac.allowed(
        User("bob"), Attributes(verb="delete", resource="configmaps", namespace="team")
    )
    assert rbac.allowed(ALICE, Attributes(verb="get", resource="nodes"))
    bot = User("system:serviceaccount:team:bot")
    assert rbac.allowed(bot, pods)
    assert not rbac.allowed(User("system:serviceaccount:other:bot"), pods)


def test_escalation_check_needs_every_requested_permission() -> None:
    granted = [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}]
    assert covers(granted, {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    assert not covers(granted, {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]})
    assert not covers(granted, {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})
    assert not covers(granted, {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]})
    named = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}]
    assert covers(
        named, {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}
    )
    assert not covers(named, {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
