"""Images: references, layer unpacking (whiteouts, escapes), archive import,
pulls from a real registry (Debian's docker-registry, started here): OCI
indexes and Docker manifest lists, gzip and plain layers, bearer-token and
htpasswd auth, HTTPS with a private CA, plain HTTP refused off loopback;
every pull failure path ending in ErrImagePull with nothing kept; the shared
store under concurrent pulls and GC; the `hypernetes image` commands."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import pty
import socket
import subprocess
import sys
import tarfile
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import imagebuild
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from rthelpers import Registry, start_registry

from hypernetes.runtime import Runtime
from hypernetes.runtime.errors import ImagePullError, NotFound, RuntimeFailure
from hypernetes.runtime.images import ImageStore, parse_reference
from hypernetes.runtime.images.archive import import_archive
from hypernetes.runtime.images.registry import RegistryClient
from hypernetes.runtime.images.store import SCRATCH
from hypernetes.runtime.images.unpack import apply_layer


def test_reference_defaults_and_errors() -> None:
    r = parse_reference("busybox")
    assert (r.registry, r.repository, r.tag) == ("docker.io", "library/busybox", "latest")
    r = parse_reference("127.0.0.1:5000/team/app:v1")
    assert (r.registry, r.repository, r.tag) == ("127.0.0.1:5000", "team/app", "v1")
    d = "sha256:" + "a" * 64
    assert parse_reference(f"localhost/app@{d}").digest == d
    for bad in ("", "UPPER/case", "app:bad tag", "app@sha256:short", " app"):
        with pytest.raises(ImagePullError) as err:
            parse_reference(bad)
        assert err.value.reason == "InvalidImageName"


def test_plain_http_only_for_loopback_or_insecure(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    c = RegistryClient(store, insecure=("registry.internal:5000",))
    assert c.base_url(parse_reference("127.0.0.1:5000/a")).startswith("http://")
    assert c.base_url(parse_reference("localhost:5000/a")).startswith("http://")
    assert c.base_url(parse_reference("registry.internal:5000/a")).startswith("http://")
    assert c.base_url(parse_reference("registry.example.com/a")).startswith("https://")
    assert (
        c.base_url(parse_reference("busybox")) == "https://registry-1.docker.io/v2/library/busybox"
    )


def _layer(tmp: Path, members: list[tuple[str, str, bytes | str]]) -> tuple[Path, str]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    path = tmp / f"layer-{hashlib.sha256(raw).hexdigest()[:8]}"
    path.write_bytes(gzip.compress(raw))
    return path, "sha256:" + hashlib.sha256(raw).hexdigest()


def test_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    l1, d1 = _layer(
        tmp_path,
        [
            ("a", "file", b"a"),
            ("d", "dir", b""),
            ("d/x", "file", b"x"),
            ("d/y", "file", b"y"),
            ("keep", "file", b"k"),
        ],
    )
    l2, d2 = _layer(
        tmp_path,
        [
            ("d/z", "file", b"z"),
            ("d/.wh..wh..opq", "file", b""),
            (".wh.a", "file", b""),
            ("new", "file", b"n"),
        ],
    )
    apply_layer(l1, str(root), d1)
    apply_layer(l2, str(root), d2)
    assert sorted(os.listdir(root)) == ["d", "keep", "new"]
    assert os.listdir(root / "d") == ["z"]  # opaque hides lower entries, not its own


def test_layers_cannot_escape_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    # A symlink to an absolute host path is followed *inside* the root.
    l1, d1 = _layer(tmp_path, [("etc", "sym", str(outside))])
    l2, d2 = _layer(tmp_path, [("etc/passwd", "file", b"pwned")])
    apply_layer(l1, str(root), d1)
    apply_layer(l2, str(root), d2)
    assert os.listdir(outside) == []
    assert (root / str(outside).lstrip("/") / "passwd").read_bytes() == b"pwned"
    l3, d3 = _layer(tmp_path, [("../evil", "file", b"x")])
    with pytest.raises(ImagePullError, match="escapes"):
        apply_layer(l3, str(root), d3)
    assert not (tmp_path / "evil").exists()


def test_diff_id_mismatch_and_corrupt_gzip(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer, _ = _layer(tmp_path, [("f", "file", b"1")])
    with pytest.raises(ImagePullError, match="diff_id"):
        apply_layer(layer, str(root), "sha256:" + "0" * 64)
    bad = tmp_path / "bad"
    bad.write_bytes(gzip.compress(b"not a tar at all" * 100)[:-20])
    with pytest.raises(ImagePullError, match="corrupt layer"):
        apply_layer(bad, str(root), None)
    zstd = tmp_path / "zstd"
    zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 64)
    with pytest.raises(ImagePullError, match="zstd-compressed"):
        apply_layer(zstd, str(root), None)


def _assert_store_clean(store: ImageStore) -> None:
    assert os.listdir(store.tmp) == []
    assert list(Path(SCRATCH).glob(f"{store.scratch_prefix}*")) == []


async def test_import_archives_list_remove_gc(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "data")
    img = imagebuild.busybox_image(cmd=["echo", "hi"])
    img.docker_archive(str(tmp_path / "d.tar"), "example.com/team/bb:1")
    img.oci_layout(str(tmp_path / "o.tar"))
    a = await rt.import_image(str(tmp_path / "d.tar"))
    b = await rt.import_image(str(tmp_path / "o.tar"), tag="local/bb:oci")
    assert a.id == b.id  # same config: the same image, two tags
    assert a.cmd == ["echo", "hi"]
    info = await rt.image_status("example.com/team/bb:1")
    assert info is not None and sorted(info.repo_tags) == [
        "docker.io/local/bb:oci",
        "example.com/team/bb:1",
    ]
    assert rt.images.rootfs_path(a.id).exists()
    assert (await rt.image_status(a.id[7:19])) is not None  # short id
    await rt.remove_image("local/bb:oci")  # untag only
    assert rt.images.rootfs_path(a.id).exists()
    await rt.remove_image("example.com/team/bb:1")
    assert await rt.list_images() == []
    assert os.listdir(rt.images.blobs) == [] and os.listdir(rt.images.rootfs_dir) == []
    with pytest.raises(NotFound):
        await rt.remove_image("example.com/team/bb:1")
    _assert_store_clean(rt.images)
    # an OCI layout whose index.json names an image index (as buildx writes)
    img.oci_layout(str(tmp_path / "n.tar"), "example.com/team/bb:nested", nested=True)
    c = await rt.import_image(str(tmp_path / "n.tar"))
    assert c.id == a.id and c.repo_tags == ["example.com/team/bb:nested"]


async def test_import_rejects_bad_archives(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "data")
    (tmp_path / "junk.tar").write_bytes(b"junk")
    with pytest.raises(ImagePullError):
        await rt.import_image(str(tmp_path / "junk.tar"), tag="x:1")
    # An OCI layout whose blob does not match its digest.
    img = imagebuild.busybox_image()
    img.oci_layout(str(tmp_path / "o.tar"))
    with tarfile.open(tmp_path / "o.tar") as src, tarfile.open(tmp_path / "bad.tar", "w") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name.startswith("blobs/") and m.size > 100000:
                data = data[:-1] + bytes([data[-1] ^ 1])
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    with pytest.raises(ImagePullError, match="digest mismatch"):
        await rt.import_image(str(tmp_path / "bad.tar"), tag="x:1")
    assert await rt.list_images() == []
    _assert_store_clean(rt.images)


async def test_pull_from_registry_via_index(registry: Registry, tmp_path: Path) -> None:
    img = imagebuild.busybox_image(cmd=["sh", "-c", "echo pulled"])
    index_digest = img.push_index(registry.host, "lib/bb", "multi")
    rt = Runtime(tmp_path / "data")
    seen: dict[str, int] = {}
    info = await rt.pull_image(
        f"{registry.host}/lib/bb:multi", progress=lambda d, n, t: seen.__setitem__(d, n)
    )
    assert info.cmd == ["sh", "-c", "echo pulled"]
    assert f"{registry.host}/lib/bb:multi" in info.repo_tags
    assert len(seen) == 1 and all(v > 0 for v in seen.values())  # the one layer
    assert rt.images.rootfs_path(info.id).exists()
    # by digest of the platform manifest, served from the cache
    manifest_digest = info.repo_digests[0].split("@")[1]
    again = await rt.pull_image(f"{registry.host}/lib/bb@{manifest_digest}")
    assert again.id == info.id
    assert index_digest != manifest_digest
    _assert_store_clean(rt.images)


async def test_pull_failures_are_err_image_pull(registry: Registry, tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "data")
    # unknown image
    with pytest.raises(ImagePullError, match="manifest unknown") as err:
        await rt.pull_image(f"{registry.host}/lib/nothing:1")
    assert err.value.reason == "ErrImagePull"
    # unknown digest
    with pytest.raises(ImagePullError) as err:
        await rt.pull_image(f"{registry.host}/lib/nothing@sha256:{'0' * 64}")
    assert err.value.reason == "ErrImagePull"
    # a layer whose stored bytes no longer match their digest (bit rot)
    img = imagebuild.Image([imagebuild.files_layer({"bin/x": os.urandom(4096)})])
    img.push(registry.host, "lib/rotten", "1")
    _, _, stored = img.blobs()
    blob = registry.blob_file("sha256:" + hashlib.sha256(stored[0]).hexdigest())
    blob.write_bytes(stored[0][:-1] + bytes([stored[0][-1] ^ 0xFF]))
    with pytest.raises(ImagePullError, match="digest mismatch"):
        await rt.pull_image(f"{registry.host}/lib/rotten:1")
    # a layer that is what its digest says, but not a valid gzip'ed tar
    garbage = gzip.compress(b"\0garbage" * 1000)[:-30]
    corrupt = imagebuild.Image([b"placeholder"], gzip_layers=False)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(_config()),
                "size": len(_config()),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(garbage),
                    "size": len(garbage),
                }
            ],
        }
    ).encode()
    del corrupt
    imagebuild._upload_blob(registry.host, "lib/corrupt", _config())
    imagebuild._upload_blob(registry.host, "lib/corrupt", garbage)
    _put_manifest(registry.host, "lib/corrupt", "1", manifest)
    with pytest.raises(ImagePullError, match="corrupt layer") as err:
        await rt.pull_image(f"{registry.host}/lib/corrupt:1")
    assert err.value.reason == "ErrImagePull"
    # a manifest whose stored bytes no longer match the digest the registry names
    good = imagebuild.busybox_image(cmd=["tampered"])
    digest = good.push(registry.host, "lib/tampered", "1")
    manifest_file = registry.blob_file(digest)
    manifest_file.write_bytes(manifest_file.read_bytes() + b" ")
    for ref in (f"{registry.host}/lib/tampered:1", f"{registry.host}/lib/tampered@{digest}"):
        with pytest.raises(ImagePullError, match="manifest digest mismatch") as err:
            await rt.pull_image(ref)
        assert err.value.reason == "ErrImagePull"
    # nothing half-done is visible or kept: no image, blob, disk or temp file
    assert await rt.list_images() == []
    _assert_store_clean(rt.images)
    assert os.listdir(rt.images.rootfs_dir) == []
    assert os.listdir(rt.images.blobs) == []


def _config() -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
        }
    ).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put_manifest(host: str, repo: str, tag: str, body: bytes) -> None:
    import urllib.request

    req = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    urllib.request.urlopen(req, timeout=30).close()


# --- bearer-token auth, against the real registry's token authentication ---------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """TEST DOUBLE of a registry token service (Debian's registry ships none):
    it checks basic credentials and issues ES256 JWTs with the signing cert
    in x5c. The registry that validates the tokens is the real one."""

    def __init__(self, user: str, password: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hn-test-token")])
        now = time.time()
        import datetime

        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime.fromtimestamp(now - 60, datetime.UTC))
            .not_valid_after(datetime.datetime.fromtimestamp(now + 3600, datetime.UTC))
            .sign(self.key, hashes.SHA256())
        )
        self.user, self.password = user, password
        self.issued = 0

    def token(self, scope: str) -> str:
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        access = []
        if scope:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": "hn-test-issuer",
            "sub": self.user,
            "aud": "hn-test-registry",
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        der = self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        self.issued += 1
        return f"{signing}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    async def handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if auth != expected:
            return web.Response(status=401)
        return web.json_response({"token": self.token(request.query.get("scope", ""))})


@pytest_asyncio.fixture
async def auth_registry(
    registry: Registry, tmp_path: Path
) -> AsyncIterator[tuple[str, TokenServer]]:
    server = TokenServer("alice", "s3cret")
    app = web.Application()
    app.router.add_get("/token", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    bundle = tmp_path / "token-ca.pem"
    bundle.write_bytes(server.cert.public_bytes(serialization.Encoding.PEM))
    # Same storage as the open registry: images pushed there are served here.
    proc, host = start_registry(
        registry.storage,
        f"""auth:
  token:
    realm: http://127.0.0.1:{port}/token
    service: hn-test-registry
    issuer: hn-test-issuer
    rootcertbundle: {bundle}
""",
    )
    try:
        yield host, server
    finally:
        proc.terminate()
        proc.wait(10)
        await runner.cleanup()
        (bundle.parent / f"registry-{host.split(':')[1]}.yml").unlink(missing_ok=True)


async def test_pull_with_bearer_token(
    registry: Registry, auth_registry: tuple[str, TokenServer], tmp_path: Path
) -> None:
    host, tokens = auth_registry
    imagebuild.busybox_image(cmd=["true"]).push(registry.host, "private/app", "1")
    rt = Runtime(tmp_path / "data")
    with pytest.raises(ImagePullError, match="token request refused"):
        await rt.pull_image(f"{host}/private/app:1")
    with pytest.raises(ImagePullError, match="token request refused"):
        await rt.pull_image(f"{host}/private/app:1", auth=("alice", "wrong"))
    info = await rt.pull_image(f"{host}/private/app:1", auth=("alice", "s3cret"))
    assert info.cmd == ["true"] and tokens.issued >= 1


# --- more registry behaviour -----------------------------------------------------------


async def test_pull_docker_manifest_list_with_plain_layers_and_whiteouts(
    registry: Registry, tmp_path: Path
) -> None:
    """Docker media types, uncompressed layers, a second layer that deletes a
    file and makes a directory opaque: the rootfs is the merged view."""
    img = imagebuild.Image(
        [
            imagebuild.busybox_layer(),
            imagebuild.files_layer({"opt/a": b"a", "opt/b": b"b", "etc/motd": b"hello"}),
            imagebuild.files_layer({"opt/c": b"c", "opt/.wh..wh..opq": b""}, ("etc/motd",)),
        ],
        gzip_layers=False,
        docker_types=True,
    )
    img.push_index(registry.host, "lib/docker", "list")
    store = ImageStore(tmp_path / "images")
    async with RegistryClient(store) as client:
        info = await client.pull(f"{registry.host}/lib/docker:list")
    assert store.rootfs_path(info.id).stat().st_size > 0
    tree = store.unpacked_path(info.id)
    assert sorted(os.listdir(tree / "opt")) == ["c"]
    assert not (tree / "etc/motd").exists() and (tree / "etc/passwd").exists()
    assert os.readlink(tree / "bin/sh") == "busybox"
    store.remove(info.id)
    assert os.listdir(store.unpacked_dir) == [] and os.listdir(store.blobs) == []


def _global_ipv4() -> str | None:
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
    ).stdout.split()
    addrs = [w.split("/")[0] for i, w in enumerate(out) if i > 0 and out[i - 1] == "inet"]
    return addrs[0] if addrs else None


def _registry_at(
    addr: str, storage: Path, config_dir: Path, tls: str = ""
) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's registry on `addr` (not loopback), serving `storage`."""
    with socket.socket() as s:
        s.bind((addr, 0))
        port = s.getsockname()[1]
    config = config_dir / f"registry-{addr}-{port}.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {storage}\nhttp:\n  addr: {addr}:{port}\n{tls}"
    )
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex((addr, port)) == 0:
                return proc, f"{addr}:{port}"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("registry did not start")


async def test_plain_http_refused_for_non_loopback_unless_insecure(
    registry: Registry, tmp_path: Path
) -> None:
    addr = _global_ipv4()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    imagebuild.busybox_image(cmd=["remote"]).push(registry.host, "lib/remote", "1")
    proc, host = _registry_at(addr, registry.storage, tmp_path)
    try:
        store = ImageStore(tmp_path / "images")
        async with RegistryClient(store) as client:
            with pytest.raises(ImagePullError, match="--insecure-registry") as err:
                await client.pull(f"{host}/lib/remote:1")
        assert err.value.reason == "ErrImagePull" and "HTTPS failed" in err.value.message
        assert store.list() == [] and os.listdir(store.blobs) == []
        async with RegistryClient(store, insecure=(host,)) as client:
            info = await client.pull(f"{host}/lib/remote:1")
        assert info.cmd == ["remote"]
    finally:
        proc.terminate()
        proc.wait(10)


def _self_signed(addr: str, d: Path) -> tuple[Path, Path]:
    """A certificate for the IP address `addr` and its key (PEM files)."""
    import datetime
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hn-test-registry")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(addr))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = d / "registry.crt", d / "registry.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_pull_over_https_with_a_private_ca(registry: Registry, tmp_path: Path) -> None:
    """A non-loopback registry speaking HTTPS: trusted only with its CA."""
    addr = _global_ipv4()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    cert, key = _self_signed(addr, tmp_path)
    imagebuild.busybox_image(cmd=["tls"]).push(registry.host, "lib/tls", "1")
    tls = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
    proc, host = _registry_at(addr, registry.storage, tmp_path, tls)
    try:
        store = ImageStore(tmp_path / "images")
        async with RegistryClient(store) as client:
            with pytest.raises(ImagePullError, match="certificate is not trusted"):
                await client.pull(f"{host}/lib/tls:1")
        async with RegistryClient(store, ca_file=str(cert)) as client:
            info = await client.pull(f"{host}/lib/tls:1")
        assert info.cmd == ["tls"] and f"{host}/lib/tls:1" in info.repo_tags
    finally:
        proc.terminate()
        proc.wait(10)


def _bcrypt(password: str) -> str:
    """A bcrypt hash (what the registry's htpasswd wants) from glibc's crypt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


async def test_pull_with_basic_auth(registry: Registry, tmp_path: Path) -> None:
    """The real registry's htpasswd authentication (challenge: Basic)."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"bob:{_bcrypt('hunter2')}\n")
    imagebuild.busybox_image(cmd=["basic"]).push(registry.host, "private/basic", "1")
    proc, host = start_registry(
        registry.storage, f"auth:\n  htpasswd:\n    realm: hn-test\n    path: {htpasswd}\n"
    )
    try:
        store = ImageStore(tmp_path / "images")
        async with RegistryClient(store) as client:
            with pytest.raises(ImagePullError, match="wants credentials"):
                await client.pull(f"{host}/private/basic:1")
        async with RegistryClient(store) as client:
            with pytest.raises(ImagePullError, match="unauthorized"):
                await client.pull(f"{host}/private/basic:1", auth=("bob", "wrong"))
        async with RegistryClient(store) as client:
            info = await client.pull(f"{host}/private/basic:1", auth=("bob", "hunter2"))
        assert info.cmd == ["basic"]
        # the CLI: the password comes on stdin, never on the command line
        cli = [_hn(), "image", "pull", "--data-dir", str(tmp_path / "cli")]
        cli += ["--username", "bob", "--password-stdin", f"{host}/private/basic:1"]
        r = subprocess.run(cli, input="hunter2\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == info.id, r.stderr
        r = subprocess.run(cli, input="nope\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "unauthorized" in r.stderr
    finally:
        proc.terminate()
        proc.wait(10)
        (registry.storage.parent / f"registry-{host.split(':')[1]}.yml").unlink(missing_ok=True)


# --- the shared store: concurrency and garbage collection -----------------------------


async def test_concurrent_pulls_of_one_image_share_the_store(
    registry: Registry, tmp_path: Path
) -> None:
    """Three pulls at once (two in this process, one CLI process) into one
    store while GC runs: each blob downloaded once, one image, one disk, no
    temp files."""
    img = imagebuild.Image(
        [
            imagebuild.busybox_layer(),
            imagebuild.files_layer({"data/big": os.urandom(3 << 20)}),
            imagebuild.files_layer({f"data/f{i}": os.urandom(1024) for i in range(200)}),
        ]
    )
    img.push(registry.host, "lib/shared", "1")
    ref = f"{registry.host}/lib/shared:1"
    data = tmp_path / "data"
    store = ImageStore(data / "images")
    cli = subprocess.Popen(
        [_hn(), "image", "pull", "--data-dir", str(data), ref],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    partial: list[set[str]] = [set(), set()]  # layers each pull saw arrive in pieces

    async def pull(i: int) -> str:
        def progress(digest: str, done: int, total: int) -> None:
            if 0 < done < total:
                partial[i].add(digest)

        async with RegistryClient(ImageStore(data / "images")) as client:
            return (await client.pull(ref, progress=progress)).id

    stop = False

    def collect() -> int:
        n = 0
        while not stop:
            n += 1
            store.gc()  # waits for no pull to be running, then deletes only garbage
            time.sleep(0.01)
        return n

    gc_task = asyncio.create_task(asyncio.to_thread(collect))
    ids = await asyncio.gather(pull(0), pull(1))
    out, err = await asyncio.to_thread(cli.communicate, timeout=120)
    stop = True
    assert await gc_task > 0
    assert cli.returncode == 0, err
    assert not partial[0] & partial[1]  # each layer downloaded by one pull only
    assert ids[0] == ids[1] == out.strip()
    images = store.list()
    assert [i.id for i in images] == [ids[0]] and images[0].repo_tags == [ref]
    manifest, config, layers = img.blobs()
    expected = {hashlib.sha256(b).hexdigest() for b in (manifest, config, *layers)}
    assert set(os.listdir(store.blobs)) == expected
    for name in expected:
        assert hashlib.sha256((store.blobs / name).read_bytes()).hexdigest() == name
    assert os.listdir(store.rootfs_dir) == [f"{ids[0][7:]}.erofs"]
    _assert_store_clean(store)


def test_gc_waits_for_pins_and_keeps_images_in_use(tmp_path: Path) -> None:
    img = imagebuild.busybox_image()
    img.docker_archive(str(tmp_path / "a.tar"), "local/a:1")
    imagebuild.Image([imagebuild.files_layer({"x": b"x"})]).docker_archive(
        str(tmp_path / "b.tar"), "local/b:1"
    )
    in_use: set[str] = set()
    store = ImageStore(tmp_path / "images", in_use=lambda: in_use)
    a = import_archive(store, str(tmp_path / "a.tar"), None)
    b = import_archive(store, str(tmp_path / "b.tar"), None)
    # garbage: a stray blob and a temp file left by a crashed pull
    stray = store.blob_path("sha256:" + "e" * 64)
    stray.write_bytes(b"stray")
    (store.tmp / "blob-crashed").write_bytes(b"half")
    scratch = Path(SCRATCH) / f"{store.scratch_prefix}crashed"
    scratch.mkdir()
    pin = store.pin()  # a pull in progress: GC must not run under it
    assert store.gc(wait=False) == 0 and stray.exists()
    store.unpin(pin)
    assert store.gc() == 3 and not stray.exists() and os.listdir(store.tmp) == []
    assert not scratch.exists()
    # an image a sandbox uses: removing it is refused, GC keeps it
    in_use.add(a.id)
    with pytest.raises(RuntimeFailure) as err:
        store.remove("local/a:1")
    assert err.value.reason == "ImageInUse"
    assert store.gc(unused=True) > 0  # removes b (unused), keeps a
    assert [i.id for i in store.list()] == [a.id]
    assert not store.rootfs_path(b.id).exists() and store.rootfs_path(a.id).exists()
    # forced removal drops the record; the disk stays while the sandbox uses it
    store.remove("local/a:1", force=True)
    assert store.list() == [] and store.rootfs_path(a.id).exists()
    in_use.clear()
    store.gc()
    assert os.listdir(store.rootfs_dir) == [] and os.listdir(store.blobs) == []


# --- the CLI -----------------------------------------------------------------------------


def _hn() -> str:
    # The installed console script (`python -m` would import hypernetes.cli twice).
    return str(Path(sys.executable).parent / "hypernetes")


def test_cli_pull_progress_lines_and_tty(registry: Registry, tmp_path: Path) -> None:
    img = imagebuild.Image(
        [imagebuild.busybox_layer(), imagebuild.files_layer({"big": os.urandom(2 << 20)})]
    )
    img.push(registry.host, "cli/progress", "1")
    ref = f"{registry.host}/cli/progress:1"
    _, _, layers = img.blobs()
    shorts = [hashlib.sha256(x).hexdigest()[:12] for x in layers]
    # not a terminal: exactly one line per layer, then the summary
    r = subprocess.run(
        [_hn(), "image", "pull", "--data-dir", str(tmp_path / "d1"), ref],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert sorted(line.split(":")[0] for line in lines[:-1]) == sorted(shorts)
    assert all(": done " in line for line in lines[:-1]) and "\x1b" not in r.stderr
    assert lines[-1].startswith("fetched 2 layers")
    assert r.stdout.strip().startswith("sha256:")
    # a terminal: per-layer lines redrawn in place
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [_hn(), "image", "pull", "--data-dir", str(tmp_path / "d2"), ref],
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    assert proc.wait(120) == 0
    assert proc.stdout is not None
    proc.stdout.close()
    text = screen.decode()
    assert "\x1b[2K" in text and "\x1b[2A" in text  # two layer lines, cursor moved up
    for short in shorts:
        assert f"{short}: done" in text
    # errors: one line, with the reason
    r = subprocess.run(
        [_hn(), "image", "pull", "--data-dir", str(tmp_path / "d1"), f"{registry.host}/cli/none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("hypernetes: ErrImagePull") and "manifest unknown" in r.stderr


def test_cli_import_ls_rm_gc(tmp_path: Path) -> None:
    img = imagebuild.busybox_image(cmd=["cli"])
    img.oci_layout(str(tmp_path / "o.tar"))
    data = str(tmp_path / "data")

    def hn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_hn(), "image", args[0], "--data-dir", data, *args[1:]],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = hn("import", str(tmp_path / "o.tar"))
    assert r.returncode == 1 and "use --tag" in r.stderr
    r = hn("import", str(tmp_path / "o.tar"), "--tag", "local/cli:1")
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.strip()
    r = hn("ls", "--json")
    listed = json.loads(r.stdout)
    assert [(i["id"], i["repo_tags"], i["cmd"]) for i in listed] == [
        (image_id, ["docker.io/local/cli:1"], ["cli"])
    ]
    r = hn("ls")
    assert "docker.io/local/cli:1" in r.stdout and image_id[7:19] in r.stdout
    (Path(data) / "images/tmp/blob-stray").write_bytes(b"x")
    r = hn("gc")
    assert r.returncode == 0 and r.stdout.startswith("removed 1 ")
    r = hn("rm", "local/cli:1")
    assert r.returncode == 0 and image_id[7:19] in r.stdout
    assert hn("ls", "--json").stdout.strip() == "[]"
    r = hn("rm", "local/cli:1")
    assert r.returncode == 1 and r.stderr.startswith("hypernetes: NotFound")
