"""Local images: OCI layout directories, OCI archives and docker save archives (synthetic and built by umoci/skopeo)."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from factorygate.oci.layers import assemble
from factorygate.oci.local import open_local, split_reference
from factorygate.oci.model import ImageError, ImageFilesystem, Platform, ResolvedImage
from oci_builders import DockerImage, Layout, Member, archive_dir, docker_archive, sha, tar_bytes

AMD64 = Platform()
SECRET = b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n"


def opened(ref: str | Path, platform: Platform = AMD64) -> ResolvedImage:
    image = open_local(str(ref), platform)
    assert image is not None
    return image


def files_of(image: ResolvedImage) -> dict[str, bytes]:
    fs = assemble(image, lambda p, s: True)
    return fs.contents


def refused(ref: str | Path, message: str, platform: Platform = AMD64) -> str:
    with pytest.raises(ImageError, match=message) as info:
        open_local(str(ref), platform)
    text = str(info.value)
    assert "\n" not in text
    return text


# --- OCI image layout directories ----------------------------------------------------------------


def test_single_image_layout_without_a_tag(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("etc/os-release", b"ID=test\n")]], config={"User": "1000"})
    image = opened(tmp_path / "l")
    assert image.transport == "oci-layout"
    assert image.name == str(tmp_path / "l")
    assert image.manifest_digest == desc["digest"]
    assert image.config["config"] == {"User": "1000"}
    assert image.diff_ids == [sha(tar_bytes([Member("etc/os-release", b"ID=test\n")]))]
    assert image.registry is None
    assert files_of(image) == {"/etc/os-release": b"ID=test\n"}


def test_tag_selects_among_several_images(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    layout.image([[Member("v", b"1")]], tag="1.0")
    layout.image([[Member("v", b"2")]], tag="2.0")
    assert files_of(opened(f"{tmp_path}/l:2.0")) == {"/v": b"2"}
    assert files_of(opened(f"{tmp_path}/l:1.0")) == {"/v": b"1"}
    refused(tmp_path / "l", r"holds 2 images; pick one with .*/l:TAG \(tags: 1\.0, 2\.0\)")
    refused(f"{tmp_path}/l:3.0", r"no image tagged '3\.0' \(tags: 1\.0, 2\.0\)")


def test_full_reference_names_match_by_tag(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    layout.image([[Member("v", b"1")]], tag="registry.example/team/app:1.0")
    assert files_of(opened(f"{tmp_path}/l:1.0")) == {"/v": b"1"}
    assert files_of(opened(f"{tmp_path}/l:registry.example/team/app:1.0")) == {"/v": b"1"}


def test_nested_multi_arch_index_selects_the_platform(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    per_arch = [
        layout.image([[Member("arch", arch.encode())]], tag=None, architecture=arch, add=False)
        for arch in ("amd64", "arm64")
    ]
    layout.nested_index(per_arch, tag="multi")
    assert files_of(opened(f"{tmp_path}/l:multi")) == {"/arch": b"amd64"}
    assert files_of(opened(f"{tmp_path}/l", Platform("linux", "arm64"))) == {"/arch": b"arm64"}
    refused(
        f"{tmp_path}/l",
        r"no image for platform linux/s390x \(index offers: linux/amd64, linux/arm64\)",
        Platform("linux", "s390x"),
    )


def test_index_nested_twice(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    inner = layout.image([[Member("deep", b"1")]], tag=None, add=False)
    middle = json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [inner]}
    ).encode()
    layout.nested_index(
        [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": layout.blob(middle), "size": len(middle)}]
    )
    assert files_of(opened(tmp_path / "l")) == {"/deep": b"1"}


def test_multi_arch_entries_directly_in_index_json(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    for arch in ("arm64", "amd64"):
        layout.image([[Member("arch", arch.encode())]], tag="latest", architecture=arch)
    assert files_of(opened(tmp_path / "l")) == {"/arch": b"amd64"}
    assert files_of(opened(f"{tmp_path}/l:latest", Platform("linux", "arm64"))) == {"/arch": b"arm64"}


def test_untagged_images_without_platforms_are_ambiguous(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    layout.image([[Member("a")]], tag=None)
    layout.image([[Member("b")]], tag=None)
    for entry in layout.index:
        del entry["platform"]
    layout.write_index()
    refused(tmp_path / "l", "holds 2 images with the same tag and no platform to choose by")


def test_layers_of_every_compression(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    layout.image([[Member("a", b"1")], [Member("b", b"2")], [Member("c", b"3")]], compression=["gzip", "zstd", "none"])
    image = opened(tmp_path / "l")
    assert [d.media_type.rsplit(".", 1)[-1] for d in image.layers] == ["tar+gzip", "tar+zstd", "tar"]
    assert files_of(image) == {"/a": b"1", "/b": b"2", "/c": b"3"}


def test_paths_containing_colons(tmp_path: Path) -> None:
    Layout(tmp_path / "my:images").image([[Member("x", b"1")]], tag="v1")
    assert files_of(opened(tmp_path / "my:images")) == {"/x": b"1"}
    assert files_of(opened(f"{tmp_path}/my:images:v1")) == {"/x": b"1"}


# --- what is not a local image ------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["alpine:3.19", "registry.example:5000/team/app:1.0", "ghcr.io/x/y@sha256:" + "a" * 64])
def test_registry_references_are_not_local(ref: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert split_reference(ref) is None
    assert open_local(ref, AMD64) is None


def test_a_stray_non_tar_file_does_not_capture_registry_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "alpine").write_text("notes\n")
    assert open_local("alpine:3.19", AMD64) is None


def test_existing_paths_that_are_not_images(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    refused(tmp_path / "plain", r"plain: a directory but not an OCI image layout \(no oci-layout file\)")
    (tmp_path / "junk.tar").write_bytes(os.urandom(4096))
    refused(tmp_path / "junk.tar", r"junk\.tar: neither an OCI image layout nor a docker or OCI image archive")
    (tmp_path / "junk.txt").write_text("hello\n")
    refused(tmp_path / "junk.txt", "not a tar file")
    (tmp_path / "empty").write_bytes(b"")
    refused(tmp_path / "empty", "not a tar file")
    (tmp_path / "c.tar.gz").write_bytes(gzip.compress(tar_bytes([Member("manifest.json", b"[]")])))
    refused(tmp_path / "c.tar.gz", "a compressed file; decompress the image archive first")
    os.mkfifo(tmp_path / "fifo")
    refused(tmp_path / "fifo", "exists but is neither an OCI image layout directory nor an image archive file")


def test_tar_that_is_neither_docker_nor_oci(tmp_path: Path) -> None:
    path = tmp_path / "src.tar"
    path.write_bytes(tar_bytes([Member("README", b"hi"), Member("src/main.c", b"int main;")]))
    refused(path, r"src\.tar: a tar archive but neither a docker save archive \(no manifest\.json\) nor an OCI archive")


# --- OCI archives --------------------------------------------------------------------------------


def test_oci_archive_reads_like_its_layout(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    layout.image([[Member("etc/passwd", b"root:x:0:0\n")], [Member("app", b"bin")]], tag="v1")
    layout.image([[Member("other", b"o")]], tag="v2")
    archive = archive_dir(tmp_path / "l", tmp_path / "image.tar")
    image = opened(f"{archive}:v1")
    assert image.transport == "oci-archive"
    assert image.diff_ids == opened(f"{tmp_path}/l:v1").diff_ids
    assert files_of(image) == {"/etc/passwd": b"root:x:0:0\n", "/app": b"bin"}
    refused(archive, r"holds 2 images; pick one with .*image\.tar:TAG \(tags: v1, v2\)")


def test_oci_archive_with_a_missing_blob(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("a", b"1")]])
    manifest = json.loads(layout.read_blob(desc["digest"]))
    (tmp_path / "l" / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]).unlink()
    image = opened(archive_dir(tmp_path / "l", tmp_path / "image.tar"))
    with pytest.raises(ImageError, match=r"blob sha256:\w+ is missing from the archive"):
        assemble(image, lambda p, s: False)


# --- docker save archives ------------------------------------------------------------------------


def test_docker_archive_single_image(tmp_path: Path) -> None:
    layers = [[Member("etc/passwd", b"root:x:0:0\n")], [Member("etc/.wh.passwd")]]
    path = docker_archive(tmp_path / "d.tar", [DockerImage(layers, ["app:1"])])
    image = opened(path)
    assert image.transport == "docker-archive"
    assert image.manifest_digest == ""
    assert [d.digest for d in image.layers] == image.diff_ids == [sha(tar_bytes(x)) for x in layers]
    assert image.manifest["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar"
    fs = assemble(image, lambda p, s: p == "/etc/passwd")
    assert fs.files == {}
    assert [(e.path, data) for e, data in fs.removed] == [("/etc/passwd", b"root:x:0:0\n")]


def test_docker_archive_selection(tmp_path: Path) -> None:
    path = docker_archive(
        tmp_path / "d.tar",
        [
            DockerImage([[Member("v", b"a1")]], ["team/app:1", "docker.io/library/app:stable"]),
            DockerImage([[Member("v", b"w2")]], ["team/web:2"]),
            DockerImage([[Member("v", b"w1")]], ["team/web:1"]),
        ],
    )
    assert files_of(opened(f"{path}:team/app:1")) == {"/v": b"a1"}
    assert files_of(opened(f"{path}:app:stable")) == {"/v": b"a1"}
    assert files_of(opened(f"{path}:2")) == {"/v": b"w2"}
    refused(f"{path}:1", r"'1' matches 2 images \(team/app:1, team/web:1\); use NAME:TAG")
    refused(path, r"holds 3 images; pick one with .*d\.tar:NAME:TAG \(tags: docker\.io/library/app:stable, team")
    refused(f"{path}:team/db:1", r"no image tagged 'team/db:1' \(tags: ")


@pytest.mark.parametrize(("how", "blob_names"), [("gzip", True), ("zstd", True), ("gzip", False), ("none", True)])
def test_docker_archive_compressed_and_blob_named_layers(tmp_path: Path, how: str, blob_names: bool) -> None:
    layers = [[Member("a", b"1")], [Member("b", b"2")]]
    path = docker_archive(tmp_path / "d.tar", [DockerImage(layers, ["x:1"], compression=how, blob_names=blob_names)])
    image = opened(path)
    assert image.diff_ids == [sha(tar_bytes(x)) for x in layers]
    if how != "none":
        assert all(d.digest not in image.diff_ids for d in image.layers)
    assert files_of(image) == {"/a": b"1", "/b": b"2"}


def test_docker_archive_legacy_symlinked_layers(tmp_path: Path) -> None:
    layer = [Member("same", b"s")]
    hexdigest = sha(tar_bytes(layer)).split(":")[1]
    path = docker_archive(
        tmp_path / "d.tar",
        [DockerImage([layer], ["x:1"])],
        extra=[Member("other/layer.tar", type=tarfile.SYMTYPE, linkname=f"../{hexdigest}/layer.tar")],
    )
    with tarfile.open(path) as tf:
        names = tf.getnames()
    manifest = json.loads(tar_member(path, "manifest.json"))
    manifest[0]["Layers"] = ["other/layer.tar"]
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())
    assert "other/layer.tar" in names
    assert files_of(opened(path)) == {"/same": b"s"}


def tar_member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def rewrite_member(path: Path, name: str, data: bytes, *, extra: list[tarfile.TarInfo] | None = None) -> None:
    """Rewrite a tar archive with one member's content replaced (in memory: test archives are tiny)."""
    with tarfile.open(path) as tf:
        members = [(m, f.read() if (f := tf.extractfile(m)) else None) for m in tf.getmembers()]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for m, content in members:
            new = data if m.name == name else content
            if new is not None:
                m.size = len(new)
            tf.addfile(m, io.BytesIO(new) if new is not None else None)
        for m in extra or []:
            tf.addfile(m)


def test_docker_archive_config_is_verified(tmp_path: Path) -> None:
    path = docker_archive(tmp_path / "d.tar", [DockerImage([[Member("a")]], ["x:1"])])
    config_name = json.loads(tar_member(path, "manifest.json"))[0]["Config"]
    config = json.loads(tar_member(path, config_name))
    config["config"] = {"User": "root"}
    rewrite_member(path, config_name, json.dumps(config).encode())
    refused(path, r"config [0-9a-f]{64}\.json: digest mismatch")


def test_docker_archive_config_name_must_carry_its_digest(tmp_path: Path) -> None:
    path = docker_archive(tmp_path / "d.tar", [DockerImage([[Member("a")]], ["x:1"])])
    manifest = json.loads(tar_member(path, "manifest.json"))
    manifest[0]["Config"] = "manifest.json"
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode())
    refused(path, r"config manifest\.json: the name carries no digest")


def test_docker_archive_layer_is_verified_against_its_diff_id(tmp_path: Path) -> None:
    path = docker_archive(tmp_path / "d.tar", [DockerImage([[Member("a", b"good")]], ["x:1"])])
    name = json.loads(tar_member(path, "manifest.json"))[0]["Layers"][0]
    rewrite_member(path, name, tar_bytes([Member("a", b"evil")]))
    image = opened(path)
    with pytest.raises(ImageError, match="digest mismatch"):
        assemble(image, lambda p, s: False)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"{}", "expected a non-empty list of image objects"),
        (b"[", "not valid JSON"),
        (b'[{"Config": 1, "Layers": []}]', "entry 0 has no Config name or Layers list"),
        (b'[{"Config": "a.json", "Layers": [1]}]', "malformed Layers"),
    ],
)
def test_docker_archive_malformed_manifest(tmp_path: Path, manifest: bytes, message: str) -> None:
    path = docker_archive(tmp_path / "d.tar", [DockerImage([[Member("a")]], ["x:1"])])
    rewrite_member(path, "manifest.json", manifest)
    refused(path, message)


@pytest.mark.parametrize(
    ("layer_name", "extra", "message"),
    [
        ("../../etc/passwd", None, r"unsafe archive member name '\.\./\.\./etc/passwd'"),
        ("evil/layer.tar", ("evil/layer.tar", "/etc/passwd"), r"archive has no member 'evil/layer.tar'"),
        ("evil/layer.tar", ("evil/layer.tar", "../../../etc/passwd"), "links outside the archive"),
        ("loop/layer.tar", ("loop/layer.tar", "layer.tar"), "too many links"),
        ("missing/layer.tar", None, r"archive has no member 'missing/layer.tar'"),
    ],
)
def test_docker_archive_layer_names_cannot_leave_the_archive(
    tmp_path: Path, layer_name: str, extra: tuple[str, str] | None, message: str
) -> None:
    path = docker_archive(tmp_path / "d.tar", [DockerImage([[Member("a")]], ["x:1"])])
    manifest = json.loads(tar_member(path, "manifest.json"))
    manifest[0]["Layers"] = [layer_name]
    links = []
    if extra:
        info = tarfile.TarInfo(extra[0])
        info.type, info.linkname = tarfile.SYMTYPE, extra[1]
        links.append(info)
    rewrite_member(path, "manifest.json", json.dumps(manifest).encode(), extra=links)
    refused(path, message)


@pytest.mark.parametrize(
    ("name", "message"),
    [("../evil", "has an unsafe path"), ("/etc/cron.d/evil", "has an unsafe path"), ("manifest.json", "appears twice")],
)
def test_hostile_outer_archive_members(tmp_path: Path, name: str, message: str) -> None:
    path = docker_archive(tmp_path / "d.tar", [DockerImage([[Member("a")]], ["x:1"])], extra=[Member(name, b"x")])
    refused(path, message)
    assert not (tmp_path.parent / "evil").exists()


# --- verification of layouts ---------------------------------------------------------------------


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def blob_path(layout: Layout, digest: str) -> Path:
    return layout.root / "blobs" / "sha256" / digest.split(":")[1]


def test_manifest_and_config_digests_are_verified(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("a")]])
    manifest = json.loads(layout.read_blob(desc["digest"]))
    corrupt(blob_path(layout, manifest["config"]["digest"]))
    refused(tmp_path / "l", r"config sha256:\w+: digest mismatch")
    corrupt(blob_path(layout, desc["digest"]))
    refused(tmp_path / "l", r"l: sha256:\w+: digest mismatch")


def test_layer_digest_and_truncation_are_verified(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("a", os.urandom(3000))]])
    layer = blob_path(layout, json.loads(layout.read_blob(desc["digest"]))["layers"][0]["digest"])
    good = layer.read_bytes()
    corrupt(layer)
    with pytest.raises(ImageError, match=r"layer 0 \(sha256:\w+\)|digest mismatch"):
        assemble(opened(tmp_path / "l"), lambda p, s: False)
    layer.write_bytes(good[:-10])
    with pytest.raises(ImageError, match="blob is truncated"):
        assemble(opened(tmp_path / "l"), lambda p, s: False)


def test_diff_id_mismatch_in_a_layout(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    raw = tar_bytes([Member("a", b"1")])
    blob = gzip.compress(raw)
    layout.image_from_blobs([(blob, "application/vnd.oci.image.layer.v1.tar+gzip", sha(b"something else"))])
    with pytest.raises(ImageError, match=r"layer 0 \(sha256:\w+\): uncompressed content does not match diff_id"):
        assemble(opened(tmp_path / "l"), lambda p, s: False)


def test_a_fifo_planted_as_a_blob_does_not_hang(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("a")]])
    config = blob_path(layout, json.loads(layout.read_blob(desc["digest"]))["config"]["digest"])
    config.unlink()
    os.mkfifo(config)
    refused(tmp_path / "l", r"blob sha256:\w+ is not a regular file")


def test_missing_files_in_a_layout(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("a")]])
    blob_path(layout, desc["digest"]).unlink()
    refused(tmp_path / "l", r"blob sha256:\w+ is missing from the layout")
    (tmp_path / "l" / "index.json").unlink()
    refused(tmp_path / "l", "index.json is missing from the layout")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda m: m.update(config={**m["config"], "mediaType": "application/vnd.cncf.helm.config.v1+json"}),
            "not a container image",
        ),
        (lambda m: m.update(schemaVersion=1), "unsupported manifest schemaVersion"),
        (lambda m: m.update(mediaType="application/vnd.example.thing"), "neither an image manifest nor an index"),
    ],
)
def test_manifests_that_are_not_images(tmp_path: Path, mutate: Any, message: str) -> None:
    layout = Layout(tmp_path / "l")
    desc = layout.image([[Member("a")]])
    manifest = json.loads(layout.read_blob(desc["digest"]))
    mutate(manifest)
    data = json.dumps(manifest).encode()
    layout.index = [
        {**desc, "digest": layout.blob(data), "size": len(data), "mediaType": manifest.get("mediaType", "")}
    ]
    layout.write_index()
    refused(tmp_path / "l", message)


def test_config_diff_ids_must_match_the_layers(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "l")
    layout.image_from_blobs([(tar_bytes([Member("a")]), "application/vnd.oci.image.layer.v1.tar", sha(b"1"))] * 2)
    config_doc: dict[str, Any] = {"rootfs": {"type": "layers", "diff_ids": [sha(b"1")]}}
    cfg = json.dumps({"architecture": "amd64", "os": "linux", **config_doc}).encode()
    desc = layout.index[0]
    manifest = json.loads(layout.read_blob(desc["digest"]))
    manifest["config"].update(digest=layout.blob(cfg), size=len(cfg))
    data = json.dumps(manifest).encode()
    layout.index = [{**desc, "digest": layout.blob(data), "size": len(data)}]
    layout.write_index()
    refused(tmp_path / "l", "config lists 1 diff_ids for 2 layers")


# --- a real image built by umoci and converted by skopeo -----------------------------------------

UMOCI, SKOPEO = shutil.which("umoci"), shutil.which("skopeo")
needs_tools = pytest.mark.skipif(
    not (UMOCI and SKOPEO), reason="umoci and skopeo build the real test image (missing from PATH; CI installs them)"
)


def run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def real_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One image in three forms: umoci layout (two layers, the second deleting a key), docker and OCI archives."""
    assert UMOCI
    assert SKOPEO
    root = tmp_path_factory.mktemp("umoci")
    layout, bundle = root / "oci", root / "bundle"
    run(UMOCI, "init", "--layout", layout)
    run(UMOCI, "new", "--image", f"{layout}:app")
    run(UMOCI, "unpack", "--rootless", "--image", f"{layout}:app", bundle)
    rootfs = bundle / "rootfs"
    for sub in ("usr/bin", "etc", "root/.ssh", "var/lib"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.realpath("/etc/os-release"), rootfs / "etc/os-release")
    shutil.copy(shutil.which("true") or "/bin/true", rootfs / "usr/bin/true")
    (rootfs / "usr/bin/su").write_bytes(b"\x7fELF")
    (rootfs / "usr/bin/su").chmod(0o4755)
    (rootfs / "bin").symlink_to("usr/bin")
    os.link(rootfs / "usr/bin/true", rootfs / "usr/bin/also-true")
    (rootfs / "root/.ssh/id_rsa").write_bytes(SECRET)
    run(UMOCI, "repack", "--refresh-bundle", "--image", f"{layout}:app", bundle)
    (rootfs / "root/.ssh/id_rsa").unlink()
    (rootfs / "etc/motd").write_text("hello\n")
    run(UMOCI, "repack", "--image", f"{layout}:app", bundle)
    run(UMOCI, "config", "--image", f"{layout}:app", "--config.user", "1000", "--config.cmd", "/usr/bin/true")
    shutil.rmtree(bundle)
    docker, oci = root / "docker.tar", root / "oci.tar"
    run(SKOPEO, "--insecure-policy", "copy", "--quiet", f"oci:{layout}:app", f"docker-archive:{docker}:test/app:v1")
    run(SKOPEO, "--insecure-policy", "copy", "--quiet", f"oci:{layout}:app", f"oci-archive:{oci}:app")
    return {"oci-layout": str(layout), "docker-archive": str(docker), "oci-archive": str(oci)}


def summary(fs: ImageFilesystem) -> dict[str, Any]:
    return {
        "files": {p: (e.type, e.mode, e.uid, e.gid, e.size, e.linkname, e.layer) for p, e in fs.files.items()},
        "contents": fs.contents,
        "removed": [(e.path, e.layer, data) for e, data in fs.removed],
        "sizes": fs.layer_sizes,
        "entries": fs.layer_entries,
    }


@needs_tools
def test_real_image_in_three_forms_reads_the_same(real_images: dict[str, str]) -> None:
    want = {"/root/.ssh/id_rsa", "/etc/os-release", "/usr/bin/also-true"}
    seen = {}
    for transport, path in real_images.items():
        for ref in (path, f"{path}:{'test/app:v1' if transport == 'docker-archive' else 'app'}"):
            image = opened(ref)
            assert image.transport == transport
            assert image.config["config"]["User"] == "1000"
            fs = assemble(image, lambda p, s: p in want)
            seen[ref] = (image.diff_ids, summary(fs))
    first_ids, first = next(iter(seen.values()))
    assert all(ids == first_ids and s == first for ids, s in seen.values())
    assert len(first_ids) == 2
    files = first["files"]
    assert files["/usr/bin/su"][1] == 0o4755
    assert files["/bin"][0] == "symlink"
    assert files["/bin"][5] == "usr/bin"
    assert files["/etc/motd"][6] == 1
    assert "/root/.ssh/id_rsa" not in files
    assert ("/root/.ssh/id_rsa", 0, SECRET) in first["removed"]
    assert first["contents"]["/etc/os-release"] == Path(os.path.realpath("/etc/os-release")).read_bytes()
    links = {files["/usr/bin/also-true"][0], files["/usr/bin/true"][0]}
    assert "hardlink" in links


@needs_tools
def test_real_archives_select_by_tag(real_images: dict[str, str]) -> None:
    docker = real_images["docker-archive"]
    refused(f"{docker}:other:tag", r"no image tagged 'other:tag' \(tags: docker\.io/test/app:v1\)")
    refused(f"{real_images['oci-archive']}:nope", r"no image tagged 'nope' \(tags: app\)")
    assert opened(f"{real_images['docker-archive']}:v1").diff_ids == opened(real_images["oci-layout"]).diff_ids
