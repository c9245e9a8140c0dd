"""Service accounts and the authentication.k8s.io/v1 API at the API server.

`install(server)` (called from `Server._install_platform`) makes the signing
key (once, under the data dir), registers the service-account bearer-token
authenticator and serves `POST .../serviceaccounts/NAME/token`: an
`authentication.k8s.io/v1` `TokenRequest` in, the same with `status.token`
and `status.expirationTimestamp` out (what `kubectl create token` posts).
It also serves `SelfSubjectReview` (who am I: `kubectl auth whoami`) and
`TokenReview` (is this token good, and whose: for components that check
tokens they are shown; the answer says nothing about why a token is not).

A token names the account's uid (and, when bound, a pod's), and carries the
namespace's tenant (`hypernetes.io/tenant` label) so the tenant boundary
applies to service accounts as to people.
"""

from __future__ import annotations

import datetime
import functools
import weakref
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hypernetes.api import errors
from hypernetes.api.auth import Authenticator
from hypernetes.api.objects import Obj, Objects
from hypernetes.api.request import Target
from hypernetes.auth.principal import User
from hypernetes.auth.serviceaccounts import (
    API_AUDIENCE,
    ServiceAccountAuthenticator,
    TokenSigner,
)
from hypernetes.resources.platform import TENANT_LABEL
from hypernetes.resources.registry import Registry, ResourceType

if TYPE_CHECKING:
    from hypernetes.api.rest import ResourceAPI
    from hypernetes.api.server import Server

API_VERSION = "authentication.k8s.io/v1"
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 48 * 3600
"""Longer requests are cut to this, as kube-apiserver's max token expiration does."""

_ISSUERS: weakref.WeakKeyDictionary[ResourceAPI, TokenRequests] = weakref.WeakKeyDictionary()
"""The TokenRequest handler of each ResourceAPI (`rest.py` routes `token` here)."""


class TokenRequests:
    """Answers TokenRequests for one server."""

    def __init__(self, objects: Objects, registry: Registry, signer: TokenSigner) -> None:
        self.objects = objects
        self.signer = signer
        self.accounts = _rt(registry, "serviceaccounts")
        self.pods = _rt(registry, "pods")
        self.namespaces = _rt(registry, "namespaces")

    async def account(self, namespace: str, name: str) -> Obj | None:
        return await self.objects.find(self.accounts, namespace, name)

    async def pod(self, namespace: str, name: str) -> Obj | None:
        return await self.objects.find(self.pods, namespace, name)

    async def create(self, namespace: str, name: str, body: Obj) -> Obj:
        account = await self.objects.get(self.accounts, namespace, name)  # 404 if missing
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise _invalid(name, "spec", "must be an object")
        seconds = _seconds(name, spec.get("expirationSeconds"))
        audiences = _audiences(name, spec.get("audiences"))
        pod = await self._bound_pod(namespace, name, spec.get("boundObjectRef"))
        ns = await self.objects.find(self.namespaces, None, namespace)
        tenant = ((ns or {}).get("metadata") or {}).get("labels", {}).get(TENANT_LABEL)
        token, expires = self.signer.issue(
            namespace=namespace,
            name=name,
            uid=str(account["metadata"].get("uid") or ""),
            seconds=seconds,
            audiences=audiences,
            tenant=tenant if isinstance(tenant, str) else None,
            pod=pod,
        )
        out_spec: Obj = {"audiences": list(audiences), "expirationSeconds": seconds}
        if pod is not None:
            out_spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1",
                                                "name": pod[0], "uid": pod[1]}  # fmt: skip
        return {
            "kind": "TokenRequest",
            "apiVersion": API_VERSION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": _now()},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(expires)},
        }

    async def _bound_pod(self, namespace: str, name: str, ref: Any) -> tuple[str, str] | None:
        if ref is None:
            return None
        if not isinstance(ref, dict) or ref.get("kind") != "Pod" or not ref.get("name"):
            raise _invalid(name, "spec.boundObjectRef", "only a Pod (by name) is supported")
        pod = await self.objects.find(self.pods, namespace, str(ref["name"]))
        uid = str(((pod or {}).get("metadata") or {}).get("uid") or "")
        if pod is None or (ref.get("uid") and ref["uid"] != uid):
            raise errors.not_found(self.pods, str(ref["name"]))
        return str(ref["name"]), uid


async def install(server: Server) -> TokenRequests:
    """Register the TokenRequest API and the service-account token authenticator."""
    assert server.objects is not None and server.api is not None
    signer = TokenSigner.for_data_dir(server.config.data_dir)
    requests = TokenRequests(server.objects, server.registry, signer)
    _ISSUERS[server.api] = requests
    server.authenticator.token_authenticators.append(
        ServiceAccountAuthenticator(signer, requests.account, requests.pod)
    )
    server.api.computed["SelfSubjectReview"] = self_subject_review
    server.api.computed["TokenReview"] = functools.partial(token_review, server.authenticator)
    return requests


async def self_subject_review(user: User, _namespace: str | None, body: Obj) -> Obj:
    body["status"] = {"userInfo": user_info(user)}
    return body


async def token_review(
    authenticator: Authenticator, _caller: User, _namespace: str | None, body: Obj
) -> Obj:
    spec = body.get("spec") or {}
    token = spec.get("token") if isinstance(spec, dict) else None
    if not isinstance(token, str) or not token:
        raise errors.bad_request("spec.token must be set")
    user = None
    for authenticate in authenticator.token_authenticators:
        user = await authenticate(token)
        if user is not None:
            break
    body["spec"] = {k: v for k, v in spec.items() if k != "token"}  # never echo the token
    body["status"] = {"authenticated": False}
    if user is not None:
        body["status"] = {"authenticated": True, "user": user_info(user),
                          "audiences": [API_AUDIENCE]}  # fmt: skip
    return body


def user_info(user: User) -> Obj:
    info: Obj = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


async def serve(api: ResourceAPI, request: web.Request, target: Target) -> web.StreamResponse:
    """Answer `POST .../serviceaccounts/NAME/token`."""
    requests = _ISSUERS.get(api)
    if requests is None or target.rt.kind != "ServiceAccount" or target.name is None:
        raise errors.not_found_path(request.path)
    if request.method != "POST":
        raise errors.method_not_allowed()
    body = await api._body(request)
    if body.get("apiVersion") not in (None, API_VERSION) or body.get("kind") not in (
        None,
        "TokenRequest",
    ):
        raise errors.bad_request(f"expected a TokenRequest of {API_VERSION}")
    result = await requests.create(target.namespace or "", target.name, body)
    return web.json_response(result, status=201)


def _rt(registry: Registry, plural: str) -> ResourceType:
    rt = registry.get("", "v1", plural)
    assert rt is not None
    return rt


def _seconds(name: str, value: Any) -> int:
    if value is None:
        return DEFAULT_SECONDS
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(name, "spec.expirationSeconds", "must be an integer")
    if value < MIN_SECONDS:
        raise _invalid(name, "spec.expirationSeconds",
                       "may not specify a duration less than 10 minutes")  # fmt: skip
    return min(value, MAX_SECONDS)


def _audiences(name: str, value: Any) -> tuple[str, ...]:
    if not value:
        return (API_AUDIENCE,)
    if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
        raise _invalid(name, "spec.audiences", "must be a list of non-empty strings")
    return tuple(value)


def _invalid(name: str, field: str, why: str) -> errors.APIError:
    rt = ResourceType("authentication.k8s.io", "v1", "TokenRequest", "tokenrequests", True)
    cause = {"reason": "FieldValueInvalid", "message": why, "field": field}
    return errors.invalid(rt, name, [cause], f'TokenRequest.authentication.k8s.io "{name}" '
                          f"is invalid: {field}: Invalid value: {why}")  # fmt: skip


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339(seconds: int) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
