"""The two per-request caches of the token path stay exact: revocations and RBAC changes
take effect at once. A real identity service on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tests.auth.test_identity_helpers import FakeClock, clock, service, store

from hypernetes.auth.decisioncache import DecisionCache
from hypernetes.auth.identity import IdentityService
from hypernetes.auth.principal import Attributes, User
from hypernetes.auth.tokencache import CachedIdentityAuthenticator

__all__ = ["clock", "service", "store"]  # fixtures


class FakeFollower:
    def __init__(self) -> None:
        self.listeners: list[Callable[[], None]] = []

    def changed(self) -> None:
        for listener in self.listeners:
            listener()


def test_decision_cache_is_cleared_by_any_follower_change() -> None:
    calls: list[Any] = []
    verdict = [True]

    def evaluate(user: User, attrs: Attributes) -> bool:
        calls.append((user.name, attrs.verb))
        return verdict[0]

    followers = [FakeFollower(), FakeFollower()]
    cache = DecisionCache(followers, evaluate, max_entries=2)
    alice, get = User("alice", ("g",)), Attributes(verb="get", resource="pods", namespace="n")
    assert cache.allowed(alice, get) and cache.allowed(alice, get)
    assert len(calls) == 1
    assert cache.allowed(User("alice", ("other",)), get), "groups are part of the key"
    assert len(calls) == 2
    verdict[0] = False
    followers[1].changed()
    assert not cache.allowed(alice, get)
    assert len(calls) == 3
    for i in range(5):  # bounded
        cache.allowed(User(f"u{i}"), get)
    assert len(cache._verdicts) <= 2


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
async def cached(service: IdentityService, clock: FakeClock) -> Any:
    auth = CachedIdentityAuthenticator(service, service.store, clock=clock)
    task = asyncio.create_task(auth.follow())
    await settle()
    assert auth.live
    yield auth
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def login(service: IdentityService, name: str = "carol") -> tuple[str, str]:
    project = await service.create_project(f"p-{name}")
    user = await service.create_user(name, "carol-Secret-1")
    await service.assign_role(project.id, user.id, "member")
    token, _ = await service.authenticate(name, "carol-Secret-1", f"p-{name}")
    return token, user.id


async def test_token_cache_hits_and_revocation_voids_it(
    cached: CachedIdentityAuthenticator, service: IdentityService, monkeypatch: Any
) -> None:
    token, _ = await login(service)
    validations = []
    real = service.validate_token

    async def counting(t: str) -> Any:
        validations.append(t)
        return await real(t)

    monkeypatch.setattr(service, "validate_token", counting)
    first = await cached(token)
    assert first is not None and first.name == "carol"
    assert await cached(token) == first
    assert len(validations) == 1, "the second request was a cache hit"
    await service.revoke_token(token)
    await settle()
    assert await cached(token) is None, "revoked: the watch voided the cache"
    assert await cached("garbage") is None
    assert "garbage" in validations and len(cached._entries) == 0, "failures are not cached"


async def test_token_cache_voided_by_role_removal_and_bounded_by_expiry(
    cached: CachedIdentityAuthenticator, service: IdentityService, clock: FakeClock
) -> None:
    token, user_id = await login(service, "dora")
    assert await cached(token) is not None
    project = await service.find_project("p-dora")
    await service.unassign_role(project.id, user_id, "member")
    await settle()
    assert await cached(token) is None
    other, _ = await login(service, "eric")
    assert await cached(other) is not None
    clock.advance(service.token_ttl + 1)
    assert await cached(other) is None, "expired, even though cached"


async def test_token_cache_unused_without_its_watch(service: IdentityService) -> None:
    auth = CachedIdentityAuthenticator(service, service.store)
    token, _ = await login(service, "fay")
    assert await auth(token) is not None
    assert not auth._entries, "no watch, no caching"
