"""The generic resource endpoints: get, list, watch, create, update, patch, delete.

One `ResourceAPI` serves every kind in the registry. Per request it parses the
query, reads the body, calls the per-kind strategy (defaults, validation),
the patch machinery and the object layer, and renders the answer (JSON, YAML
or a Table). Subresources `status` and `scale` are handled here too; streams
(log, exec, attach) belong to the node issue.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hypernetes.api import codec, errors, patching, strategy
from hypernetes.api.admission import PROTECTED_NAMESPACES
from hypernetes.api.auth import USER
from hypernetes.api.crds import CLEANUP_FINALIZER
from hypernetes.api.objects import Obj, Objects, now_micro, parse_resource_version
from hypernetes.api.request import DRY_RUN, Target
from hypernetes.api.watch import serve_watch
from hypernetes.resources import fields, labels, tables
from hypernetes.resources.registry import Registry, ResourceType
from hypernetes.resources.schema import definition

_MERGE_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
_CONFLICT_RETRIES = 5

Hook = Callable[[Any, Target, Obj, "Obj | None"], Awaitable[None]]
Computed = Callable[[Any, "str | None", Obj], Awaitable[Obj]]
Scope = Callable[[Any, ResourceType], Awaitable["Callable[[Obj], bool] | None"]]
"""scope(user, rt) -> a predicate an object must pass to be listed or watched by
that user, or None when the user sees everything of that kind."""


class ResourceAPI:
    """Serves resource requests for every registered kind."""

    def __init__(self, objects: Objects, registry: Registry) -> None:
        self.objects = objects
        self.registry = registry
        self.admission: list[Hook] = []
        """Run on create/update after validation as hook(user, target, new, old); may raise."""
        self.computed: dict[str, Computed] = {}
        """Handlers of create-only kinds that are computed, not stored, by kind."""
        self.scopes: list[Scope] = []
        """Narrow lists and watches to what the caller may see (the tenant boundary)."""

    async def handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        reset = DRY_RUN.set(request.method != "GET" and _dry_run(request))
        try:
            return await self._handle(request, target)
        finally:
            DRY_RUN.reset(reset)

    async def _handle(self, request: web.Request, target: Target) -> web.StreamResponse:
        method = request.method
        if not target.rt.stored:
            return await self._compute(request, target)
        if target.subresource in ("status", "scale"):
            return await self._subresource(request, target)
        if target.subresource == "finalize":
            if method != "PUT":
                raise errors.method_not_allowed()
            return await self._update(request, target, finalize=True)
        if target.subresource in ("binding", "eviction"):
            from hypernetes.api import binding  # pods/binding, pods/eviction

            return await binding.serve(self, request, target)
        if target.subresource == "token":
            from hypernetes.api import serviceaccounts  # serviceaccounts/token: TokenRequest

            return await serviceaccounts.serve(self, request, target)
        if target.subresource in ("log", "exec", "attach"):
            from hypernetes.api import streams  # pods/log, pods/exec, pods/attach

            return await streams.serve(self, request, target)
        if target.subresource:
            raise errors.method_not_allowed(f"{target.subresource} is not served yet")
        if target.is_collection:
            if method == "GET":
                if _flag(request, "watch"):
                    return await self._watch(request, target)
                return await self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
        else:
            if method == "GET":
                obj = await self.objects.get(target.rt, target.namespace, target.name or "")
                return respond(request, target.rt, obj)
            if method == "PUT":
                return await self._update(request, target)
            if method == "PATCH":
                return await self._patch(request, target)
            if method == "DELETE":
                return await self._delete(request, target)
        raise errors.method_not_allowed()

    async def _compute(self, request: web.Request, target: Target) -> web.StreamResponse:
        handler = self.computed.get(target.rt.kind)
        if request.method != "POST" or not target.is_collection or handler is None:
            raise errors.method_not_allowed()
        body = await self._body(request)
        self._check_type(target.rt, body)
        result = await handler(request[USER], target.namespace, body)
        return respond(request, target.rt, result, status=201)

    # -- reads ---------------------------------------------------------------

    async def _filter(self, request: web.Request, rt: ResourceType) -> Callable[[Obj], bool]:
        visible = [
            p for p in [await scope(request[USER], rt) for scope in self.scopes] if p is not None
        ]
        try:
            label_sel = labels.parse(request.query.get("labelSelector", ""))
        except labels.LabelSelectorError as exc:
            raise errors.bad_request(str(exc)) from None
        try:
            field_reqs = fields.parse(request.query.get("fieldSelector", ""))
            fields.check_supported(rt, field_reqs)
        except fields.FieldSelectorError as exc:
            raise errors.bad_request(str(exc)) from None

        def keep(obj: Obj) -> bool:
            return (
                all(p(obj) for p in visible)
                and labels.matches(label_sel, obj.get("metadata", {}).get("labels") or {})
                and (fields.matches(rt, obj, field_reqs))
            )

        return keep

    async def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt, q = target.rt, request.query
        limit = _int_param(request, "limit")
        rv = parse_resource_version(q.get("resourceVersion"))
        match = q.get("resourceVersionMatch", "")
        if match and match not in ("Exact", "NotOlderThan"):
            raise errors.bad_request(f"invalid resourceVersionMatch: {match!r}")
        if match and not q.get("resourceVersion"):
            raise errors.bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided"
            )
        if q.get("continue") and rv:
            raise errors.bad_request(
                "specifying resource version is not allowed when using continue"
            )
        at = rv if match == "Exact" else 0
        if rv and match != "Exact":
            await self._wait_for_revision(rv)
        page = await self.objects.list(
            rt,
            target.namespace,
            keep=await self._filter(request, rt),
            limit=limit,
            continue_token=q.get("continue", ""),
            revision=at,
        )
        body: Obj = {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(page.revision)},
            "items": [_with_type(rt, o) for o in page.items],
        }
        if page.continue_token:
            body["metadata"]["continue"] = page.continue_token
        return respond(request, rt, body, is_list=True)

    async def _wait_for_revision(self, rv: int) -> None:
        """`resourceVersion` means "not older than": wait a little for the store to get there."""
        for _ in range(30):
            if await self.objects.store.current_revision() >= rv:
                return
            await asyncio.sleep(0.1)
        raise errors.timeout(f"Too large resource version: {rv}")

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        return await serve_watch(
            request, self.objects, target, await self._filter(request, target.rt)
        )

    # -- writes --------------------------------------------------------------

    async def _body(self, request: web.Request) -> Obj:
        if request.content_length is not None and request.content_length > codec.MAX_BODY:
            raise errors.too_large(codec.MAX_BODY)
        raw = await _read_limited(request)
        return codec.decode_object(raw, _media(request))

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version is not None and api_version != rt.api_version:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected "
                f"API version ({rt.api_version})"
            )
        if kind is not None and kind != rt.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")

    def _check_namespace(self, target: Target, obj: Obj) -> None:
        meta = obj["metadata"]
        if not target.rt.namespaced:
            meta.pop("namespace", None)
            return
        ns = meta.get("namespace")
        if ns and ns != target.namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        meta["namespace"] = target.namespace

    async def _admit(self, request: web.Request, target: Target, obj: Obj, old: Obj | None) -> None:
        for hook in self.admission:
            await hook(request[USER], target, obj, old)

    async def _create(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        obj = await self._body(request)
        self._check_type(rt, obj)
        self._check_namespace(target, obj)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and isinstance(meta.get("generateName"), str):
            meta["name"] = meta["generateName"] + _random_suffix()
        mode = strategy.field_validation_mode(request.query.get("fieldValidation"))
        warnings = await self._prepare_create(request, target, obj, mode)
        created = await self.objects.create(rt, obj, dry_run=_dry_run(request))
        return respond(request, rt, created, status=201, warnings=warnings)

    async def _prepare_create(
        self, request: web.Request, target: Target, obj: Obj, mode: str
    ) -> list[str]:
        rt = target.rt
        if rt.has_status() and rt.kind != "Namespace":
            obj.pop("status", None)
        strategy.default(rt, obj)
        warnings = strategy.validate(rt, obj, None, mode)
        await self._admit(request, target, obj, None)
        manager = _field_manager(request)
        return warnings + self._record(rt, None, obj, manager)

    def _record(
        self, rt: ResourceType, old: Obj | None, new: Obj, manager: str, subresource: str = ""
    ) -> list[str]:
        new["metadata"]["managedFields"] = patching.record_update(
            old,
            new,
            manager=manager,
            subresource=subresource,
            schema=_schema(rt),
            now=now_micro(),
        )["metadata"].get("managedFields", [])
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]
        return []

    async def _update(
        self, request: web.Request, target: Target, *, finalize: bool = False
    ) -> web.StreamResponse:
        rt, name = target.rt, target.name or ""
        obj = await self._body(request)
        self._check_type(rt, obj)
        self._check_namespace(target, obj)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        meta["name"] = name
        old = await self.objects.get(rt, target.namespace, name)
        wanted = meta.get("resourceVersion")
        if wanted:
            parse_resource_version(wanted)
            if wanted != old["metadata"]["resourceVersion"]:
                raise errors.stale(rt, name)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if finalize:
            obj = _only_finalizers(old, obj)
        elif rt.has_status():
            _keep(old, obj, "status")
        mode = strategy.field_validation_mode(request.query.get("fieldValidation"))
        updated, warnings = await self._store_update(
            request, target, old, obj, mode, "finalize" if finalize else ""
        )
        return respond(request, rt, updated, warnings=warnings)

    async def _store_update(
        self,
        request: web.Request,
        target: Target,
        old: Obj,
        new: Obj,
        mode: str,
        subresource: str = "",
    ) -> tuple[Obj, list[str]]:
        rt = target.rt
        # On the main resource kube keeps a namespace's spec.finalizers; `finalize` changes them.
        strategy.default(rt, new, None if subresource == "finalize" else old)
        warnings = strategy.validate(rt, new, old, mode)
        await self._admit(request, target, new, old)
        self._record(rt, old, new, _field_manager(request), subresource)
        if _same_content(old, new):
            return old, warnings  # kube does not write (or bump the revision) for no-ops
        return await self.objects.update(rt, old, new, dry_run=_dry_run(request)), warnings

    async def _patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt, name = target.rt, target.name or ""
        patch_type = _MERGE_TYPES.get(_media(request))
        if patch_type is None:
            raise errors.unsupported_media_type(_media(request))
        if patch_type == "strategic" and rt.definition is None:
            raise errors.unsupported_media_type(_media(request))
        if request.content_length is not None and request.content_length > codec.MAX_BODY:
            raise errors.too_large(codec.MAX_BODY)
        patch = codec.decode(await _read_limited(request), _media(request))
        mode = strategy.field_validation_mode(request.query.get("fieldValidation"))
        for _ in range(_CONFLICT_RETRIES):
            old = await self.objects.find(rt, target.namespace, name)
            if old is None:
                if patch_type != "apply":
                    raise errors.not_found(rt, name)
                return await self._apply_create(request, target, patch, mode)
            new = self._patched(request, rt, old, patch, patch_type, target.subresource)
            try:
                updated, warnings = await self._store_update(request, target, old, new, mode)
            except errors.APIError as exc:
                if exc.reason == "Conflict" and "modified" in exc.message and not _pins_rv(patch):
                    continue  # someone wrote in between; patches re-apply to the new state
                raise
            return respond(request, rt, updated, warnings=warnings)
        raise errors.stale(rt, name)

    def _patched(
        self,
        request: web.Request,
        rt: ResourceType,
        old: Obj,
        patch: Any,
        patch_type: str,
        subresource: str,
    ) -> Obj:
        try:
            if patch_type == "json":
                if not isinstance(patch, list):
                    raise errors.bad_request("json patch must be a list of operations")
                new = patching.json_patch(old, patch)
            elif not isinstance(patch, dict):
                raise errors.bad_request("the patch must be a JSON object")
            elif patch_type == "merge":
                new = patching.merge_patch(old, patch)
            elif patch_type == "strategic":
                new = patching.strategic_merge_patch(old, patch, _schema(rt) or {})
            else:
                new = self._applied(request, rt, old, patch)
        except patching.PatchError as exc:
            raise errors.APIError(
                exc.code, "Invalid" if exc.code == 422 else "BadRequest", str(exc)
            ) from None
        if not isinstance(new, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise errors.stale(rt, old["metadata"]["name"])
        self._check_type(rt, new)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if subresource == "status":
            new = _only_status(old, new)
        elif rt.has_status() and patch_type != "apply":
            _keep(old, new, "status")
        return new

    def _applied(
        self, request: web.Request, rt: ResourceType, live: Obj | None, config: Obj
    ) -> Obj:
        manager = request.query.get("fieldManager")
        if not manager:
            raise errors.bad_request("PATCH /apply requires fieldManager to be set")
        self._check_type(rt, config)
        if live is not None:
            name = config["metadata"].get("name")
            if name and name != live["metadata"]["name"]:
                raise errors.bad_request(
                    "the name of the object does not match the name on the URL"
                )
        ignored = ("status",) if rt.has_status() else ()
        try:
            return patching.apply(
                live,
                config,
                manager=manager,
                force=_flag(request, "force"),
                schema=_schema(rt),
                now=now_micro(),
                ignored_paths=ignored,
            )
        except patching.ApplyConflict as exc:
            raise errors.APIError(
                409,
                "Conflict",
                str(exc),
                details={
                    "causes": [
                        {
                            "reason": "FieldManagerConflict",
                            "message": f'conflict with "{c.manager}"',
                            "field": c.path,
                        }
                        for c in exc.conflicts
                    ]
                },
            ) from None

    async def _apply_create(
        self, request: web.Request, target: Target, config: Any, mode: str
    ) -> web.StreamResponse:
        if not isinstance(config, dict):
            raise errors.bad_request("the apply configuration must be an object")
        obj = self._applied(request, target.rt, None, config)
        self._check_namespace(target, obj)
        obj["metadata"]["name"] = target.name
        strategy.default(target.rt, obj)
        warnings = strategy.validate(target.rt, obj, None, mode)
        await self._admit(request, target, obj, None)
        created = await self.objects.create(target.rt, obj, dry_run=_dry_run(request))
        return respond(request, target.rt, created, status=201, warnings=warnings)

    # -- subresources --------------------------------------------------------

    async def _subresource(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt, name, sub = target.rt, target.name or "", target.subresource
        if request.method == "GET":
            obj = await self.objects.get(rt, target.namespace, name)
            return web.json_response(to_scale(rt, obj) if sub == "scale" else obj)
        if request.method == "PATCH" and sub == "status":
            return await self._patch(request, target)
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed()
        mode = strategy.field_validation_mode(request.query.get("fieldValidation"))
        for _ in range(_CONFLICT_RETRIES):
            old = await self.objects.get(rt, target.namespace, name)
            if sub == "status":
                body = await self._body(request)
                self._check_type(rt, body)
                _check_rv(rt, old, body)
                new = _only_status(old, body)
            else:
                new = await self._scaled(request, rt, old)
            try:
                updated, warnings = await self._store_update(request, target, old, new, mode, sub)
            except errors.APIError as exc:
                if exc.reason == "Conflict" and request.method == "PATCH":
                    continue
                raise
            out = to_scale(rt, updated) if sub == "scale" else updated
            return web.json_response(out, headers=_warning_headers(warnings))
        raise errors.stale(rt, name)

    async def _scaled(self, request: web.Request, rt: ResourceType, old: Obj) -> Obj:
        current = to_scale(rt, old)
        raw = codec.decode(await _read_limited(request), _media(request))
        if request.method == "PATCH":
            patch_type = _MERGE_TYPES.get(_media(request), "merge")
            try:
                scale = (
                    patching.json_patch(current, raw)
                    if patch_type == "json"
                    else patching.merge_patch(current, raw)
                )
            except patching.PatchError as exc:
                raise errors.APIError(exc.code, "BadRequest", str(exc)) from None
        else:
            scale = raw
        if not isinstance(scale, dict):
            raise errors.bad_request("Scale must be an object")
        _check_rv(rt, old, scale)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid(
                rt,
                old["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": "must be greater than or equal to 0",
                    }
                ],
                f'Scale.autoscaling "{old["metadata"]["name"]}" is invalid: spec.replicas: '
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["replicas"] = replicas
        return new

    # -- deletes -------------------------------------------------------------

    async def _delete_options(self, request: web.Request) -> Obj:
        options: Obj = {}
        if request.can_read_body:
            raw = await _read_limited(request)
            if raw.strip():
                options = codec.decode_object(raw, _media(request))
        q = request.query
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = _int_param(request, "gracePeriodSeconds")
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is not None and policy is None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
            options["propagationPolicy"] = policy
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                '"Foreground", "Background", "Orphan"'
            )
        return options

    async def _delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = await self._delete_options(request)
        obj = await self.objects.get(target.rt, target.namespace, target.name or "")
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
            raise errors.conflict(
                target.rt,
                target.name or "",
                "Precondition failed: UID in precondition does not match the UID in record",
            )
        if (
            pre.get("resourceVersion")
            and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(
                target.rt, target.name or "", "Precondition failed: ResourceVersion does not match"
            )
        result, gone = await self._delete_one(request, target.rt, obj, options)
        if gone and target.rt.kind != "Namespace":
            return respond(request, target.rt, result)
        return respond(request, target.rt, result, status=200 if gone else 202)

    async def _delete_one(
        self, request: web.Request, rt: ResourceType, obj: Obj, options: Obj
    ) -> tuple[Obj, bool]:
        policy = options.get("propagationPolicy")
        extra: tuple[str, ...] = ()
        if policy == "Orphan":
            extra = ("orphan",)
        elif policy == "Foreground":
            extra = ("foregroundDeletion",)
        if rt.kind == "Namespace" and not rt.group:
            if obj["metadata"]["name"] in PROTECTED_NAMESPACES:
                raise errors.forbidden(
                    f'namespaces "{obj["metadata"]["name"]}" is forbidden: this namespace may '
                    "not be deleted"
                )
            return await self._delete_namespace(request, rt, obj)
        if rt.kind == "CustomResourceDefinition":
            extra += (CLEANUP_FINALIZER,)
        grace = grace_seconds(rt, obj, options)
        return await self.objects.delete(
            rt, obj, add_finalizers=extra, grace_seconds=grace, dry_run=_dry_run(request)
        )

    async def _delete_namespace(
        self, request: web.Request, rt: ResourceType, obj: Obj
    ) -> tuple[Obj, bool]:
        if "deletionTimestamp" in obj["metadata"]:
            return obj, False
        if not (obj.get("spec") or {}).get("finalizers") and not obj["metadata"].get("finalizers"):
            return await self.objects.delete(rt, obj, dry_run=_dry_run(request))
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = _now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        if _dry_run(request):
            return new, False
        return await self.objects.replace_exact(rt, obj, new), False

    async def _delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = await self._delete_options(request)
        page = await self.objects.list(
            target.rt, target.namespace, keep=await self._filter(request, target.rt)
        )
        deleted = []
        for obj in page.items:
            try:
                result, _ = await self._delete_one(request, target.rt, obj, options)
            except errors.APIError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(_with_type(target.rt, result))
        body = {
            "kind": target.rt.list_kind,
            "apiVersion": target.rt.api_version,
            "metadata": {"resourceVersion": str(page.revision)},
            "items": deleted,
        }
        return respond(request, target.rt, body, is_list=True)


# -- helpers -----------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def grace_seconds(rt: ResourceType, obj: Obj, options: Obj) -> int | None:
    """Pods bound to a node terminate gracefully; the node agent deletes them after."""
    if rt.kind != "Pod" or rt.group or not (obj.get("spec") or {}).get("nodeName"):
        return None
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return None
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    return int(grace) if int(grace) > 0 else None


async def _read_limited(request: web.Request) -> bytes:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > codec.MAX_BODY:
            raise errors.too_large(codec.MAX_BODY)
        chunks.append(chunk)
    return b"".join(chunks)


def _media(request: web.Request) -> str:
    """The request's media type; JSON when the client sent none (as kube assumes)."""
    if "Content-Type" not in request.headers:
        return codec.JSON
    return request.content_type


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def _int_param(request: web.Request, name: str) -> int:
    value = request.query.get(name, "")
    if not value:
        return 0
    if not re.fullmatch(r"-?\d+", value):
        raise errors.bad_request(f"invalid {name}: {value!r}")
    number = int(value)
    if number < 0 and name != "gracePeriodSeconds":
        raise errors.bad_request(f"invalid {name}: {value!r}")
    return number


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'dryRun: Unsupported value: "{v}": supported values: "All"')
    return bool(values)


def _field_manager(request: web.Request) -> str:
    manager = request.query.get("fieldManager")
    if manager:
        if len(manager) > 128:
            raise errors.bad_request("fieldManager: Too long: may not be more than 128 bytes")
        return manager
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"


def _schema(rt: ResourceType) -> Obj | None:
    if rt.crd_schema is not None:
        return rt.crd_schema
    return definition(rt.definition) if rt.definition else None


def _with_type(rt: ResourceType, obj: Obj) -> Obj:
    obj.setdefault("apiVersion", rt.api_version)
    obj.setdefault("kind", rt.kind)
    return obj


def _keep(old: Obj, new: Obj, field: str) -> None:
    if field in old:
        new[field] = copy.deepcopy(old[field])
    else:
        new.pop(field, None)


def _only_status(old: Obj, body: Obj) -> Obj:
    """The status subresource changes the status (and nothing else) of `old`."""
    new = copy.deepcopy(old)
    if "status" in body:
        new["status"] = body["status"]
    else:
        new.pop("status", None)
    return new


def _only_finalizers(old: Obj, body: Obj) -> Obj:
    """The namespace `finalize` subresource changes spec.finalizers only."""
    new = copy.deepcopy(old)
    new.setdefault("spec", {})["finalizers"] = (body.get("spec") or {}).get("finalizers") or []
    return new


def _check_rv(rt: ResourceType, old: Obj, body: Obj) -> None:
    rv = (body.get("metadata") or {}).get("resourceVersion")
    if rv and rv != old["metadata"]["resourceVersion"]:
        raise errors.stale(rt, old["metadata"]["name"])


def _pins_rv(patch: Any) -> bool:
    return isinstance(patch, dict) and bool((patch.get("metadata") or {}).get("resourceVersion"))


def _same_content(old: Obj, new: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        meta = {k: v for k, v in o.get("metadata", {}).items() if k != "managedFields"}
        return {**o, "metadata": meta}

    return strip(old) == strip(new)


def _random_suffix() -> str:
    import secrets

    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(5))


def to_scale(rt: ResourceType, obj: Obj) -> Obj:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": _selector_string(selector),
        },
    }


def _selector_string(selector: Obj) -> str:
    """A LabelSelector in the string form Scale.status.selector carries."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(values))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(values))})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    return {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)}


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept


def respond(
    request: web.Request,
    rt: ResourceType,
    obj: Obj,
    *,
    status: int = 200,
    is_list: bool = False,
    warnings: list[str] | None = None,
) -> web.Response:
    headers = _warning_headers(warnings or [])
    if wants_table(request):
        items = obj["items"] if is_list else [obj]
        list_meta = (
            obj["metadata"]
            if is_list
            else {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        )
        try:
            body = tables.table(
                rt,
                items,
                now=datetime.datetime.now(datetime.UTC),
                include_object=request.query.get("includeObject", "Metadata"),
                list_meta=list_meta,
            )
        except tables.TableError as exc:
            raise errors.bad_request(str(exc)) from None
        return web.json_response(body, status=status, headers=headers)
    if "application/yaml" in request.headers.get(
        "Accept", ""
    ) and "json" not in request.headers.get("Accept", ""):
        return web.Response(
            body=codec.encode_yaml(obj),
            status=status,
            headers=headers,
            content_type="application/yaml",
        )
    return web.Response(
        body=codec.encode(obj), status=status, headers=headers, content_type="application/json"
    )
