"""OpenAPI v3 documents of the served API, shaped as kube-apiserver publishes them.

`GET /openapi/v3` returns `index()`: one entry per document (`api/v1`, `apis/apps/v1`, ...,
plus `api`, `apis`, `apis/<group>` and `version`), each a URL carrying the document's hash.
`GET /openapi/v3/<path>` returns `document()`: `paths` for every resource and subresource with
the operations, query parameters and `x-kubernetes-*` extensions kube publishes, and
`components.schemas` with every definition reachable from them.

Clients rely on details of these documents: `kubectl explain` walks `components.schemas` from
the schema whose `x-kubernetes-group-version-kind` names the kind; `kubectl apply` finds the
strategic-merge keys (`x-kubernetes-patch-merge-key`) there, and decides that the server
validates fields itself (`--validate=strict` becomes `?fieldValidation=Strict`) only if every
PATCH operation of the kind lists a `fieldValidation` query parameter.

Built-in schemas come from `hypernetes.resources.schema` (a JSON-schema dialect) and are
converted to OpenAPI 3.0 the way kube writes them; CRD-served kinds get a schema built from
their `openAPIV3Schema`, named after the reversed group (`com.example.stable.v1.CronTab`).

Documents are pure functions of the registry; `OpenAPICache` keeps them until the registry's
resource types for that group-version change.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from hypernetes.resources import schema
from hypernetes.resources.registry import Registry, ResourceType

Doc = dict[str, Any]

DEFAULT_BASE = "/openapi/v3"
REF_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
INFO = {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"}

_OVERRIDES: dict[str, Doc] = {
    # The stored dialect spells these as `oneOf`; kube publishes plain strings with a format.
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "description": "An integer or a string (such as a port number or a port name).",
        "type": "string",
        "format": "int-or-string",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "description": "A fixed-point number with an optional unit suffix, such as 100m or 1Gi.",
        "type": "string",
    },
}


# -- schema conversion ----------------------------------------------------------------------------


def _single_type(value: Any) -> Any:
    """`["string", "null"]` is how the stored dialect says "may be unset"; kube says `string`."""
    if isinstance(value, list):
        types = [t for t in value if t != "null"]
        return types[0] if len(types) == 1 else types
    return value


def convert_schema(node: Any) -> Any:
    """Convert one stored JSON-schema node (recursively) to kube's OpenAPI 3.0 spelling."""
    if not isinstance(node, dict):
        return copy.deepcopy(node)
    out: Doc = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type":
            out[key] = _single_type(value)
        elif key == "properties":
            out[key] = {name: convert_schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = convert_schema(value)
        elif key in ("allOf", "oneOf", "anyOf"):
            out[key] = [convert_schema(v) for v in value]
        else:
            out[key] = copy.deepcopy(value)
    if "$ref" not in node:
        return out
    ref = {"$ref": REF_PREFIX + schema.ref_name(node["$ref"])}
    # A reference with siblings (a description, patch extensions) is written as allOf, as kube.
    return {"allOf": [ref], **out} if out else ref


def convert_definition(name: str) -> Doc:
    """A built-in definition in OpenAPI 3.0 form."""
    if name in _OVERRIDES:
        return copy.deepcopy(_OVERRIDES[name])
    converted: Doc = convert_schema(schema.definition(name))
    if "x-kubernetes-group-version-kind" in converted:
        # The stored schemas pin apiVersion/kind with an enum kube does not publish.
        for prop in ("apiVersion", "kind"):
            converted.get("properties", {}).get(prop, {}).pop("enum", None)
    return converted


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _components(roots: Iterable[str], local: dict[str, Doc]) -> dict[str, Doc]:
    """`roots` and every definition they reach; `local` holds schemas not in the built-ins."""
    found: dict[str, Doc] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = local[name] if name in local else convert_definition(name)
        pending.extend(_refs(found[name]))
    return dict(sorted(found.items()))


# -- names ----------------------------------------------------------------------------------------


def _reverse_domain(group: str) -> str:
    return ".".join(reversed(group.split("."))) if group else "core"


def definition_name(rt: ResourceType) -> str:
    """The components.schemas key of `rt`'s kind."""
    if rt.definition and rt.crd_schema is None:
        return rt.definition
    return f"{_reverse_domain(rt.group)}.{rt.version}.{rt.kind}"


def _list_definition_name(rt: ResourceType) -> str:
    return definition_name(rt) + "List"


def _group_camel(group: str) -> str:
    """`rbac.authorization.k8s.io` -> `RbacAuthorization`, as kube's operation IDs."""
    if not group:
        return "Core"
    parts = group.removesuffix(".k8s.io").replace("-", ".").split(".")
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def _gv_camel(group: str, version: str) -> str:
    return _group_camel(group) + version[:1].upper() + version[1:]


def _tag(group: str, version: str) -> str:
    camel = _group_camel(group)
    return f"{camel[:1].lower()}{camel[1:]}_{version}"


def _prefix(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


def _gvk(group: str, version: str, kind: str) -> Doc:
    return {"group": group, "kind": kind, "version": version}


# -- parameters -----------------------------------------------------------------------------------

_PARAMETERS: dict[str, tuple[str, str]] = {
    "allowWatchBookmarks": ("boolean", "Ask for watch events of type BOOKMARK."),
    "command": ("string", "The command to run; repeat the parameter for each argument."),
    "container": ("string", "The container to use; defaults to the only container."),
    "continue": ("string", "The continue token of the previous page of a chunked list."),
    "dryRun": ("string", "When All, the request is processed but nothing is persisted."),
    "fieldManager": ("string", "The name of the actor making the change (required for apply)."),
    "fieldSelector": ("string", "Only objects whose fields match this selector."),
    "fieldValidation": (
        "string",
        "How to treat unknown or duplicate fields in the body: Ignore, Warn (default) or "
        "Strict (reject the request).",
    ),
    "follow": ("boolean", "Stream the log as it grows."),
    "force": ("boolean", "Take over fields owned by other managers (apply patches only)."),
    "gracePeriodSeconds": ("integer", "Seconds to wait before deleting; 0 means at once."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean",
        "Delete an object that cannot be read from storage (unsafe).",
    ),
    "insecureSkipTLSVerifyBackend": ("boolean", "Skip verifying the node's serving certificate."),
    "labelSelector": ("string", "Only objects whose labels match this selector."),
    "limit": ("integer", "The largest number of items to return; more come with a token."),
    "limitBytes": ("integer", "Stop after this many bytes of log."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy=Orphan."),
    "pretty": ("string", "If 'true', the output is indented."),
    "previous": ("boolean", "The log of the previous instance of the container."),
    "propagationPolicy": (
        "string",
        "Garbage collection of dependents: Orphan, Background, Foreground.",
    ),
    "resourceVersion": ("string", "Which version of the data to serve; see resourceVersionMatch."),
    "resourceVersionMatch": ("string", "How resourceVersion applies: Exact or NotOlderThan."),
    "sendInitialEvents": ("boolean", "Start a watch with the current objects, then a bookmark."),
    "sinceSeconds": ("integer", "Only log lines newer than this many seconds."),
    "stderr": ("boolean", "Redirect the standard error stream."),
    "stdin": ("boolean", "Redirect the standard input stream."),
    "stdout": ("boolean", "Redirect the standard output stream."),
    "tailLines": ("integer", "Only this many lines from the end of the log."),
    "timeoutSeconds": ("integer", "Time limit of the list or watch call."),
    "timestamps": ("boolean", "Prefix every log line with its RFC 3339 time."),
    "tty": ("boolean", "Allocate a terminal."),
    "watch": ("boolean", "Stream changes instead of listing; start from resourceVersion."),
}

_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = (*_WRITE_PARAMS, "force")
_DELETE_PARAMS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
_DELETECOLLECTION_PARAMS = tuple(
    sorted({*_DELETE_PARAMS, *_LIST_PARAMS} - {"allowWatchBookmarks", "watch"})
)
_LOG_PARAMS = (
    "container",
    "follow",
    "insecureSkipTLSVerifyBackend",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "tailLines",
    "timestamps",
)
_ATTACH_PARAMS = ("container", "stderr", "stdin", "stdout", "tty")


def _query(name: str) -> Doc:
    kind, description = _PARAMETERS[name]
    return {
        "description": description,
        "in": "query",
        "name": name,
        "schema": {"type": kind, "uniqueItems": True},
    }


def _path_param(name: str, description: str) -> Doc:
    return {
        "description": description,
        "in": "path",
        "name": name,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _path_params(rt: ResourceType, *, item: bool) -> list[Doc]:
    params = [_path_param("name", f"name of the {rt.kind}")] if item else []
    if rt.namespaced:
        params.append(
            _path_param("namespace", "object name and auth scope, such as for teams and projects")
        )
    return [*params, _query("pretty")]


# -- operations -----------------------------------------------------------------------------------

_MEDIA = ("application/json", "application/yaml")
_WATCH_MEDIA = ("application/json", "application/json;stream=watch", "application/yaml")
_PATCH_MEDIA = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_STATUS_NAMES = {"200": "OK", "201": "Created", "202": "Accepted"}


def _ref(name: str) -> Doc:
    return {"$ref": REF_PREFIX + name}


def _responses(definition: str | None, codes: Iterable[str], media: Iterable[str] = _MEDIA) -> Doc:
    out: Doc = {}
    for code in codes:
        body = _ref(definition) if definition else {"type": "string"}
        out[code] = {
            "content": {m: {"schema": copy.deepcopy(body)} for m in media},
            "description": _STATUS_NAMES[code],
        }
    out["401"] = {"description": "Unauthorized"}
    return out


def _body(definition: str, *, required: bool = True, media: Iterable[str] = ("*/*",)) -> Doc:
    body: Doc = {"content": {m: {"schema": _ref(definition)} for m in media}}
    if required:
        body["required"] = True
    return body


class _Builder:
    """Operations of one resource type, with kube's IDs, tags and extensions."""

    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt
        self.kind_def = definition_name(rt)
        self.tag = _tag(rt.group, rt.version)
        self.gv_camel = _gv_camel(rt.group, rt.version)
        self.scope = "Namespaced" if rt.namespaced else ""
        # Strategic merge needs the patch metadata of a built-in schema; CRDs don't offer it.
        builtin = rt.definition is not None and rt.crd_schema is None and rt.crd_name is None
        self.patch_media = _PATCH_MEDIA if builtin else _PATCH_MEDIA[:3]

    def op(self, verb: str, action: str, summary: str, suffix: str = "", **parts: Any) -> Doc:
        """One operation; `parts` may hold params, body, responses, gvk and op_id."""
        op_id = parts.get("op_id") or f"{verb}{self.gv_camel}{self.scope}{self.rt.kind}{suffix}"
        out: Doc = {"description": summary, "operationId": op_id}
        if parts.get("params"):
            out["parameters"] = [_query(p) for p in parts["params"]]
        if parts.get("body"):
            out["requestBody"] = parts["body"]
        out["responses"] = parts["responses"]
        out["tags"] = [self.tag]
        out["x-kubernetes-action"] = action
        out["x-kubernetes-group-version-kind"] = parts.get("gvk") or _gvk(
            self.rt.group, self.rt.version, self.rt.kind
        )
        return out

    def collection(self) -> Doc:
        kind, list_def = self.rt.kind, _list_definition_name(self.rt)
        verbs = set(self.rt.verbs)
        item: Doc = {"parameters": _path_params(self.rt, item=False)}
        if "list" in verbs:
            item["get"] = self.op(
                "list",
                "list",
                f"list or watch objects of kind {kind}",
                params=_LIST_PARAMS,
                responses=_responses(list_def, ["200"], _WATCH_MEDIA),
            )
        if "create" in verbs:
            item["post"] = self.op(
                "create",
                "post",
                f"create a {kind}",
                params=_WRITE_PARAMS,
                body=_body(self.kind_def),
                responses=_responses(self.kind_def, ["200", "201", "202"]),
            )
        if "deletecollection" in verbs:
            item["delete"] = self.op(
                "delete",
                "deletecollection",
                f"delete collection of {kind}",
                params=_DELETECOLLECTION_PARAMS,
                body=_body(f"{META}.DeleteOptions", required=False),
                responses=_responses(f"{META}.Status", ["200"]),
                op_id=f"delete{self.gv_camel}Collection{self.scope}{kind}",
            )
        return item

    def all_namespaces(self) -> Doc:
        op = self.op(
            "list",
            "list",
            f"list or watch objects of kind {self.rt.kind}",
            params=_LIST_PARAMS,
            responses=_responses(_list_definition_name(self.rt), ["200"], _WATCH_MEDIA),
            op_id=f"list{self.gv_camel}{self.rt.kind}ForAllNamespaces",
        )
        return {"get": op, "parameters": [_query("pretty")]}

    def item(self) -> Doc:
        kind, verbs = self.rt.kind, set(self.rt.verbs)
        item: Doc = {"parameters": _path_params(self.rt, item=True)}
        if "get" in verbs:
            item["get"] = self.op(
                "read",
                "get",
                f"read the specified {kind}",
                responses=_responses(self.kind_def, ["200"]),
            )
        if "update" in verbs:
            item["put"] = self.replace(f"replace the specified {kind}")
        if "patch" in verbs:
            item["patch"] = self.patch(f"partially update the specified {kind}")
        if "delete" in verbs:
            item["delete"] = self.op(
                "delete",
                "delete",
                f"delete a {kind}",
                params=_DELETE_PARAMS,
                body=_body(f"{META}.DeleteOptions", required=False),
                responses=_responses(f"{META}.Status", ["200", "202"]),
            )
        return item

    def replace(self, summary: str, suffix: str = "", definition: str = "", **kw: Any) -> Doc:
        definition = definition or self.kind_def
        return self.op(
            "replace",
            "put",
            summary,
            suffix,
            params=_WRITE_PARAMS,
            body=_body(definition),
            responses=_responses(definition, ["200", "201"]),
            **kw,
        )

    def patch(self, summary: str, suffix: str = "", definition: str = "", **kw: Any) -> Doc:
        definition = definition or self.kind_def
        return self.op(
            "patch",
            "patch",
            summary,
            suffix,
            params=_PATCH_PARAMS,
            body=_body(f"{META}.Patch", media=self.patch_media),
            responses=_responses(definition, ["200", "201"]),
            **kw,
        )

    def read(self, summary: str, suffix: str, definition: str, **kw: Any) -> Doc:
        return self.op(
            "read", "get", summary, suffix, responses=_responses(definition, ["200"]), **kw
        )

    def state(self, suffix: str, what: str, definition: str, gvk: Doc | None = None) -> Doc:
        """GET/PUT/PATCH of a subresource holding (part of) an object: status, scale."""
        kind = self.rt.kind
        return {
            "get": self.read(f"read {what} of the specified {kind}", suffix, definition, gvk=gvk),
            "put": self.replace(
                f"replace {what} of the specified {kind}", suffix, definition, gvk=gvk
            ),
            "patch": self.patch(
                f"partially update {what} of the specified {kind}", suffix, definition, gvk=gvk
            ),
            "parameters": _path_params(self.rt, item=True),
        }

    def create(self, suffix: str, definition: str, gvk: Doc) -> Doc:
        """POST of a subresource that takes an object of its own: binding, eviction, token."""
        op = self.op(
            "create",
            "post",
            f"create {suffix[:1].lower()}{suffix[1:]} of a {self.rt.kind}",
            suffix,
            params=_WRITE_PARAMS,
            body=_body(definition),
            responses=_responses(definition, ["200", "201", "202"]),
            gvk=gvk,
        )
        return {"post": op, "parameters": _path_params(self.rt, item=True)}

    def connect(self, suffix: str, params: Iterable[str], options_kind: str) -> Doc:
        """GET and POST of a streaming subresource: exec, attach."""
        gvk = _gvk("", "v1", options_kind)
        out: Doc = {"parameters": [*_path_params(self.rt, item=True)[:-1]]}
        for verb in ("get", "post"):
            out[verb] = self.op(
                "connect",
                "connect",
                f"connect {verb.upper()} requests to {suffix.lower()} of {self.rt.kind}",
                params=tuple(params),
                responses=_responses(None, ["200"], ("*/*",)),
                gvk=gvk,
                op_id=f"connect{self.gv_camel}{verb.title()}{self.scope}{self.rt.kind}{suffix}",
            )
        return out

    def log(self) -> Doc:
        op = self.op(
            "read",
            "get",
            f"read log of the specified {self.rt.kind}",
            "Log",
            params=_LOG_PARAMS,
            responses=_responses(None, ["200"], ("application/json", "text/plain")),
        )
        return {"get": op, "parameters": _path_params(self.rt, item=True)}


def _subresource(b: _Builder, name: str) -> Doc | None:
    kind = b.rt.kind
    if name == "status":
        return b.state("Status", "status", b.kind_def)
    if name == "scale":
        scale_gvk = _gvk("autoscaling", "v1", "Scale")
        return b.state("Scale", "scale", "io.k8s.api.autoscaling.v1.Scale", scale_gvk)
    if name == "log":
        return b.log()
    if name in ("exec", "attach"):
        params = ("command", *_ATTACH_PARAMS) if name == "exec" else _ATTACH_PARAMS
        return b.connect(name.title(), params, f"{kind}{name.title()}Options")
    if name == "binding":
        return b.create("Binding", "io.k8s.api.core.v1.Binding", _gvk("", "v1", "Binding"))
    if name == "eviction":
        gvk = _gvk("policy", "v1", "Eviction")
        return b.create("Eviction", "io.k8s.api.policy.v1.Eviction", gvk)
    if name == "token":
        gvk = _gvk("authentication.k8s.io", "v1", "TokenRequest")
        return b.create("Token", "io.k8s.api.authentication.v1.TokenRequest", gvk)
    if name == "finalize":
        return {
            "put": b.replace(f"replace finalize of the specified {kind}", "Finalize"),
            "parameters": _path_params(b.rt, item=True),
        }
    return None


def _resource_paths(rt: ResourceType) -> dict[str, Doc]:
    b = _Builder(rt)
    prefix = _prefix(rt.group, rt.version)
    scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
    collection = f"{scope}/{rt.plural}"
    item = f"{collection}/{{name}}"
    paths = {collection: b.collection()}
    if set(rt.verbs) & {"get", "update", "patch", "delete"}:
        paths[item] = b.item()  # create-only kinds (reviews) have no item path
    if rt.namespaced and "list" in rt.verbs:
        paths[f"{prefix}/{rt.plural}"] = b.all_namespaces()
    for name in rt.subresources:
        if (sub := _subresource(b, name)) is not None:
            paths[f"{item}/{name}"] = sub
    return paths


# -- schemas of CRD-served and other non-built-in kinds -------------------------------------------


def _type_meta(prop: str) -> Doc:
    description = schema.definition("io.k8s.api.core.v1.Pod")["properties"][prop]["description"]
    return {"description": description, "type": "string"}


def _meta_ref(definition: str, description: str) -> Doc:
    return {"allOf": [_ref(definition)], "description": description}


def _local_kind_schema(rt: ResourceType) -> Doc:
    """A CRD version's schema (or an open object) with kube's standard envelope."""
    body: Doc = copy.deepcopy(rt.crd_schema) if rt.crd_schema else {}
    if not rt.crd_schema:
        body["x-kubernetes-preserve-unknown-fields"] = True
    body["type"] = "object"
    body["properties"] = {
        **(body.get("properties") or {}),
        "apiVersion": _type_meta("apiVersion"),
        "kind": _type_meta("kind"),
        "metadata": _meta_ref(f"{META}.ObjectMeta", "Standard object's metadata."),
    }
    body["x-kubernetes-group-version-kind"] = [_gvk(rt.group, rt.version, rt.kind)]
    return body


def _local_list_schema(rt: ResourceType) -> Doc:
    return {
        "description": f"{rt.kind}List is a list of {rt.kind}",
        "properties": {
            "apiVersion": _type_meta("apiVersion"),
            "items": {
                "description": f"List of {rt.plural}.",
                "items": _ref(definition_name(rt)),
                "type": "array",
            },
            "kind": _type_meta("kind"),
            "metadata": _meta_ref(f"{META}.ListMeta", "Standard list metadata."),
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [_gvk(rt.group, rt.version, rt.list_kind)],
    }


def _local_schemas(rts: Iterable[ResourceType]) -> dict[str, Doc]:
    out: dict[str, Doc] = {}
    for rt in rts:
        if rt.definition and rt.crd_schema is None:
            continue
        out[definition_name(rt)] = _local_kind_schema(rt)
        out[_list_definition_name(rt)] = _local_list_schema(rt)
    return out


# -- documents ------------------------------------------------------------------------------------

_COMMON = tuple(f"{META}.{n}" for n in ("DeleteOptions", "Patch", "Status", "WatchEvent"))
_SECURITY: Doc = {
    "securitySchemes": {
        "BearerToken": {
            "description": "Bearer Token authentication",
            "in": "header",
            "name": "authorization",
            "type": "apiKey",
        }
    }
}


def _document(paths: dict[str, Doc], roots: Iterable[str], local: dict[str, Doc]) -> Doc:
    return {
        "components": {"schemas": _components(roots, local), **copy.deepcopy(_SECURITY)},
        "info": dict(INFO),
        "openapi": "3.0.0",
        "paths": dict(sorted(paths.items())),
        "security": [{"BearerToken": []}],
    }


def _get_only(path: str, op_id: str, summary: str, definition: str, tag: str) -> Doc:
    op = {
        "description": summary,
        "operationId": op_id,
        "responses": _responses(definition, ["200"]),
        "tags": [tag],
    }
    return {path: {"get": op}}


def document(registry: Registry, group: str, version: str) -> Doc:
    """The OpenAPI 3.0 document of one served group-version; KeyError if it is not served."""
    rts = sorted(registry.in_group_version(group, version), key=lambda rt: rt.plural)
    if not rts:
        raise KeyError(f"{group}/{version}" if group else version)
    prefix = _prefix(group, version)
    paths = _get_only(
        f"{prefix}/",
        f"get{_gv_camel(group, version)}APIResources",
        "get available resources",
        f"{META}.APIResourceList",
        _tag(group, version),
    )
    roots = [f"{META}.APIResourceList", *_COMMON]
    for rt in rts:
        paths.update(_resource_paths(rt))
        roots.append(definition_name(rt))
        if "list" in rt.verbs:
            roots.append(_list_definition_name(rt))
    roots += _refs(paths)  # bodies of subresources: Scale, Eviction, Binding...
    return _document(paths, roots, _local_schemas(rts))


def _discovery_document(key: str) -> Doc | None:
    """The small documents of the discovery endpoints: `api`, `apis`, `apis/<g>`, `version`."""
    if key == "api":
        paths = _get_only("/api/", "getCoreAPIVersions", "get available API versions",
                          f"{META}.APIVersions", "core")  # fmt: skip
        return _document(paths, [f"{META}.APIVersions"], {})
    if key == "apis":
        paths = _get_only("/apis/", "getAPIVersions", "get available API versions",
                          f"{META}.APIGroupList", "apis")  # fmt: skip
        return _document(paths, [f"{META}.APIGroupList"], {})
    if key == "version":
        paths = _get_only("/version/", "getCodeVersion", "get the code version",
                          "io.k8s.apimachinery.pkg.version.Info", "version")  # fmt: skip
        return _document(paths, ["io.k8s.apimachinery.pkg.version.Info"], {})
    if key.startswith("apis/"):
        group = key[len("apis/") :]
        camel = _group_camel(group)
        paths = _get_only(f"/apis/{group}/", f"get{camel}APIGroup", "get information of a group",
                          f"{META}.APIGroup", f"{camel[:1].lower()}{camel[1:]}")  # fmt: skip
        return _document(paths, [f"{META}.APIGroup"], {})
    return None


def hash(document: Doc) -> str:
    """SHA-512 of the canonical JSON, in upper-case hex as kube publishes it."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha512(canonical.encode()).hexdigest().upper()


def _gv_key(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _keys(registry: Registry) -> list[str]:
    """Every document path, as index() lists them."""
    keys = ["api", "apis", "version"]
    for group, versions in registry.group_versions().items():
        if group:
            keys.append(f"apis/{group}")
        keys += [_gv_key(group, v) for v in versions]
    return sorted(keys)


def _parse_key(path: str) -> str:
    return path.split("?", 1)[0].strip("/")


def document_for_path(registry: Registry, path: str) -> Doc | None:
    """The document published at `/openapi/v3/<path>` (`apis/apps/v1`, `api`, ...); None if none."""
    key = _parse_key(path)
    if key not in _keys(registry):
        return None
    parts = key.split("/")
    if parts[0] == "api" and len(parts) == 2:
        return document(registry, "", parts[1])
    if parts[0] == "apis" and len(parts) == 3:
        return document(registry, parts[1], parts[2])
    return _discovery_document(key)


def index(registry: Registry, *, base: str = DEFAULT_BASE) -> Doc:
    """The discovery index of `GET /openapi/v3` (builds every document to hash it)."""
    entries = {}
    for key in _keys(registry):
        doc = document_for_path(registry, key)
        assert doc is not None
        entries[key] = {"serverRelativeURL": f"{base}/{key}?hash={hash(doc)}"}
    return {"paths": entries}


class OpenAPICache:
    """Documents and hashes built once per state of the registry.

    A group-version's document is rebuilt when the resource types the registry serves for it
    are not the very objects it was built from (the registry replaces a type's object when a
    CRD changes), or after `invalidate()`. Returned documents are shared: treat them as
    read-only.
    """

    def __init__(self, registry: Registry, *, base: str = DEFAULT_BASE) -> None:
        self.registry = registry
        self.base = base
        self._entries: dict[str, tuple[tuple[ResourceType, ...], Doc, str]] = {}
        self._encoded: dict[str, tuple[str, bytes]] = {}

    def invalidate(self) -> None:
        self._entries.clear()
        self._encoded.clear()

    def _stamp(self, key: str) -> tuple[ResourceType, ...]:
        parts = key.split("/")
        if parts[0] == "api" and len(parts) == 2:
            return tuple(self.registry.in_group_version("", parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            return tuple(self.registry.in_group_version(parts[1], parts[2]))
        return ()  # the discovery documents do not depend on what is served

    def _entry(self, path: str) -> tuple[Doc, str] | None:
        key = _parse_key(path)
        if key not in _keys(self.registry):
            return None
        stamp = self._stamp(key)
        cached = self._entries.get(key)
        if cached is not None and _same_objects(cached[0], stamp):
            return cached[1], cached[2]
        doc = document_for_path(self.registry, key)
        assert doc is not None
        digest = hash(doc)
        self._entries[key] = (stamp, doc, digest)
        return doc, digest

    def document_for_path(self, path: str) -> Doc | None:
        """The document at `/openapi/v3/<path>`, or None when nothing is published there."""
        entry = self._entry(path)
        return entry[0] if entry else None

    def hash_for_path(self, path: str) -> str | None:
        """The hash of that document (what `?hash=` carries; an ETag for the server)."""
        entry = self._entry(path)
        return entry[1] if entry else None

    def encoded_for_path(self, path: str) -> bytes | None:
        """The document as compact JSON bytes, encoded once per version of the document.

        Serializing `api/v1` costs more than building the response around it; a server can
        send these bytes as they are (with `Content-Type: application/json`).
        """
        entry = self._entry(path)
        if entry is None:
            return None
        key, (doc, digest) = _parse_key(path), entry
        cached = self._encoded.get(key)
        if cached is None or cached[0] != digest:
            cached = (digest, json.dumps(doc, separators=(",", ":")).encode())
            self._encoded[key] = cached
        return cached[1]

    def document(self, group: str, version: str) -> Doc | None:
        return self.document_for_path(_gv_key(group, version))

    def index(self) -> Doc:
        paths = {}
        for key in _keys(self.registry):
            digest = self.hash_for_path(key)
            paths[key] = {"serverRelativeURL": f"{self.base}/{key}?hash={digest}"}
        return {"paths": paths}


def _same_objects(a: tuple[ResourceType, ...], b: tuple[ResourceType, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
