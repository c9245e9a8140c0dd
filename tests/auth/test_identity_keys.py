"""The Fernet key repository: layout, permissions, rotation, and tokens across rotations."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from tests.auth.test_identity_helpers import ADMIN_PASSWORD, clock, make_service, store

from hypernetes.auth.identity import FernetKeyRepository, IdentityService, KeyRepositoryError
from hypernetes.store import SQLiteStore

__all__ = ["clock", "store"]  # fixtures


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_repository_has_staged_and_primary_keys_readable_by_us_only(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask must not leak into the modes
    try:
        repo = FernetKeyRepository(tmp_path / "keys")
        repo.ensure()
    finally:
        os.umask(old_umask)
    assert repo.key_numbers() == [0, 1]
    assert mode(repo.path) == 0o700
    for number in (0, 1):
        key_file = repo.path / str(number)
        assert mode(key_file) == 0o600
        Fernet(key_file.read_bytes())  # a valid Fernet key
    repo.ensure()  # idempotent: same keys
    assert repo.key_numbers() == [0, 1]


def test_ensure_tightens_loose_permissions(tmp_path: Path) -> None:
    repo = FernetKeyRepository(tmp_path / "keys")
    repo.ensure()
    (repo.path / "1").chmod(0o644)
    repo.path.chmod(0o755)
    repo.ensure()
    assert mode(repo.path) == 0o700 and mode(repo.path / "1") == 0o600


def test_rotation_promotes_staged_and_keeps_max_active_keys(tmp_path: Path) -> None:
    repo = FernetKeyRepository(tmp_path / "keys", max_active_keys=3)
    repo.ensure()
    staged = (repo.path / "0").read_bytes()
    assert repo.rotate() == 2
    assert (repo.path / "2").read_bytes() == staged  # the staged key became primary
    assert (repo.path / "0").read_bytes() != staged  # and a new one is staged
    assert repo.key_numbers() == [0, 1, 2]
    assert repo.rotate() == 3
    assert repo.key_numbers() == [0, 2, 3]  # key 1 fell off
    assert all(mode(repo.path / str(n)) == 0o600 for n in repo.key_numbers())
    with pytest.raises(ValueError):
        FernetKeyRepository(tmp_path / "x", max_active_keys=1)


def test_staged_key_decrypts_before_it_encrypts(tmp_path: Path) -> None:
    """A server that has seen a rotation issues tokens that others, not yet rotated, accept."""
    repo = FernetKeyRepository(tmp_path / "keys")
    repo.ensure()
    staged = Fernet((repo.path / "0").read_bytes())
    assert repo.fernet().decrypt(staged.encrypt(b"from a rotated peer")) == b"from a rotated peer"
    primary = Fernet((repo.path / "1").read_bytes())
    assert primary.decrypt(repo.fernet().encrypt(b"x")) == b"x"  # encrypts with the primary


def test_missing_or_broken_repository_is_an_error(tmp_path: Path) -> None:
    repo = FernetKeyRepository(tmp_path / "keys")
    with pytest.raises(KeyRepositoryError):
        repo.fernet()
    repo.ensure()
    (repo.path / "1").write_bytes(b"not a key")
    with pytest.raises(KeyRepositoryError):
        repo.fernet()
    (repo.path / "1").unlink()
    with pytest.raises(KeyRepositoryError):
        repo.fernet()
    (repo.path / "1").unlink(missing_ok=True)
    with pytest.raises(KeyRepositoryError):
        repo.rotate()


async def test_tokens_survive_rotations_until_their_key_is_dropped(
    store: SQLiteStore, tmp_path: Path
) -> None:
    svc = make_service(store, tmp_path / "data", max_active_keys=3)
    await svc.bootstrap(ADMIN_PASSWORD)
    # A second server sharing the key repository (as Keystone nodes do) sees rotations.
    peer = make_service(store, tmp_path / "data")
    old, _ = await svc.authenticate("admin", ADMIN_PASSWORD, "admin")
    svc.rotate_keys()
    assert await svc.validate_token(old) is not None
    assert await peer.validate_token(old) is not None
    newer, _ = await peer.authenticate("admin", ADMIN_PASSWORD, "admin")
    assert await svc.validate_token(newer) is not None
    svc.rotate_keys()  # the key that sealed `old` is gone now
    assert await svc.validate_token(old) is None
    assert await peer.validate_token(old) is None
    assert await svc.validate_token(newer) is not None


async def test_service_keeps_its_keys_under_the_data_dir(
    store: SQLiteStore, tmp_path: Path
) -> None:
    svc: IdentityService = make_service(store, tmp_path / "data")
    assert svc.keys.path == tmp_path / "data" / "identity" / "fernet-keys"
    assert mode(svc.keys.path) == 0o700
