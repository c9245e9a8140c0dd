"""Identity service benchmark: token validation and login costs, each beside a baseline.

Run: .venv/bin/python benchmarks/identity_bench.py [--rounds N]

Measures, on a real SQLite store in a temporary directory, with the default
(production) argon2id parameters:

- validate_token (what the API server pays per bearer-token request), against
  two baselines measured in the same run: one bare Fernet decryption of the
  same token, and one store `get`;
- the same validation through KeystoneProxyIdentity (HTTP on loopback);
- a successful password login, against one bare argon2id verification;
- a failed login for an existing user vs for an unknown user (should be ~1.0:
  no user enumeration by timing).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from hypernetes.auth.identity import IdentityService, KeystoneProxyIdentity, Unauthorized, build_app
from hypernetes.store import SQLiteStore


async def median_ms(action: Callable[[], Awaitable[object]], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hn-identity-bench-") as tmp:
        store = SQLiteStore(Path(tmp) / "state.db")
        service = IdentityService(store, Path(tmp) / "data")  # default argon2id parameters
        await service.bootstrap("bench-admin-password")
        project = await service.create_project("acme")
        user = await service.create_user("alice", "alice-password")
        await service.assign_role(project.id, user.id, "member")
        token, _ = await service.authenticate("alice", "alice-password", "acme")
        padded = token.encode() + b"=" * (-len(token) % 4)
        fernet = service.keys.fernet()
        hasher = service.passwords.hasher
        assert user.password_hash is not None
        user_hash = user.password_hash

        async def bare_decrypt() -> None:
            fernet.decrypt(padded)

        async def store_get() -> None:
            await store.get(f"/identity/users/{user.id}")

        async def validate() -> None:
            assert await service.validate_token(token) is not None

        fast = max(rounds * 20, 200)
        results: list[tuple[str, float, str]] = []
        decrypt_ms = await median_ms(bare_decrypt, fast)
        get_ms = await median_ms(store_get, fast)
        validate_ms = await median_ms(validate, fast)
        results += [
            ("baseline: Fernet decrypt of the token", decrypt_ms, ""),
            ("baseline: one store get", get_ms, ""),
            (
                "validate_token (in process)",
                validate_ms,
                f"{validate_ms / get_ms:.1f}x a store get",
            ),
        ]

        root = web.Application()
        root.add_subapp("/identity", build_app(service))
        runner = web.AppRunner(root, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/identity"
        async with KeystoneProxyIdentity(url) as proxy:

            async def proxied() -> None:
                assert await proxy.validate_token(token) is not None

            proxy_ms = await median_ms(proxied, fast // 4)
        await runner.cleanup()
        results.append(
            (
                "KeystoneProxyIdentity over loopback HTTP",
                proxy_ms,
                f"{proxy_ms / validate_ms:.1f}x in process",
            )
        )

        async def argon2_verify() -> None:
            await asyncio.to_thread(hasher.verify, user_hash, "alice-password")

        async def login() -> None:
            await service.authenticate("alice", "alice-password", "acme")

        async def failed(name: str) -> Callable[[], Awaitable[None]]:
            async def attempt() -> None:
                try:
                    await service.authenticate(name, "wrong-password")
                except Unauthorized:
                    return
                raise AssertionError("login should have failed")

            return attempt

        # Interleaved, so that noise from other work on the machine hits every measure alike.
        wrong, unknown = await failed("alice"), await failed("nobody")
        measures = (argon2_verify, login, wrong, unknown)
        samples: list[list[float]] = [[] for _ in measures]
        for _ in range(rounds):
            for i, measure in enumerate(measures):
                samples[i].append(await median_ms(measure, 1))
        argon_ms, login_ms, wrong_ms, unknown_ms = (statistics.median(s) for s in samples)
        results += [
            ("baseline: one argon2id verify (default params)", argon_ms, ""),
            ("password login, project-scoped", login_ms, f"{login_ms / argon_ms:.2f}x argon2"),
            ("failed login, existing user", wrong_ms, f"{wrong_ms / argon_ms:.2f}x argon2"),
            (
                "failed login, unknown user",
                unknown_ms,
                f"{unknown_ms / wrong_ms:.2f}x existing user",
            ),
        ]
        await store.close()

    p = service.passwords.hasher
    print(
        f"argon2id t={p.time_cost} m={p.memory_cost} KiB p={p.parallelism}; "
        f"{rounds} rounds for logins, {fast} for validation; Python {sys.version.split()[0]}"
    )
    print(f"{'measure':<48} {'median ms':>10}  ratio")
    for name, ms, ratio in results:
        print(f"{name:<48} {ms:>10.3f}  {ratio}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    asyncio.run(main(parser.parse_args().rounds))
