"""Fixtures of the runtime tests: guest boot assets (built once, cached),
test images, a real registry on loopback. Helpers are in rthelpers.py (a
unique name: other parts have conftest modules of their own)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # the helper modules beside this file

import imagebuild
from rthelpers import Registry, start_registry

from hypernetes.runtime import assets

_SESSION_TMP: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """A private temp dir for this session (and its subprocesses), so that
    the leak checks see only what this session's tests leave behind."""
    global _SESSION_TMP
    _SESSION_TMP = tempfile.mkdtemp(prefix="hnrt.")
    os.environ["TMPDIR"] = _SESSION_TMP
    tempfile.tempdir = _SESSION_TMP


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_TMP is not None:
        shutil.rmtree(_SESSION_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def boot_assets() -> assets.BootAssets:
    """Builds (or finds cached) the guest kernel and initramfs, once."""
    return assets.boot_assets("hypernetes")


@pytest.fixture(scope="session")
def images_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="hnrt-img-"))
    imagebuild.busybox_image().docker_archive(str(d / "busybox.tar"), "test/busybox:1")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A short state path (sockets live there: 107-byte limit)."""
    d = Path(tempfile.mkdtemp(prefix="hnrt-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """Debian's docker-registry on a random loopback port, temp storage."""
    d = Path(tempfile.mkdtemp(prefix="hnrt-reg-"))
    (d / "storage").mkdir()
    proc, host = start_registry(d / "storage")
    try:
        yield Registry(host, d / "storage")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)
