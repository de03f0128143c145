"""Unpacking ModelDataUrl tarballs: what lands in the model folder, and what never does."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
from pathlib import Path

import pytest

from batchform.errors import RuntimeStartError
from batchform.runtimes.modeldata import UnsafeModelDataError, extract_model_data


def file_member(
    name: str, data: bytes = b"data", mode: int = 0o644
) -> tuple[tarfile.TarInfo, bytes]:
    member = tarfile.TarInfo(name)
    member.size, member.mode = len(data), mode
    return member, data


def link_member(
    name: str, target: str, kind: bytes = tarfile.SYMTYPE
) -> tuple[tarfile.TarInfo, None]:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member, None


def special_member(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    member = tarfile.TarInfo(name)
    member.type = kind
    return member, None


def build_tarball(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz"
) -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for member, data in members:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def test_tarball_is_extracted_with_links_and_modes(tmp_path: Path) -> None:
    tarball = build_tarball(
        tmp_path / "model.tar.gz",
        [
            file_member("./weights/layer1.bin", b"\x00\x01\x02"),
            file_member("./code/inference.sh", b"#!/bin/sh\n", mode=0o755),
            link_member("./latest", "weights/layer1.bin"),
            link_member("./weights/again.bin", "weights/layer1.bin", tarfile.LNKTYPE),
            link_member("./weights/self", "."),
        ],
    )
    model_dir = tmp_path / "model"

    digest = extract_model_data(str(tarball), str(model_dir))

    assert digest == hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert (model_dir / "weights" / "layer1.bin").read_bytes() == b"\x00\x01\x02"
    assert (model_dir / "latest").read_bytes() == b"\x00\x01\x02"
    assert (model_dir / "weights" / "again.bin").read_bytes() == b"\x00\x01\x02"
    assert (model_dir / "code" / "inference.sh").stat().st_mode & stat.S_IXUSR


def test_plain_tar_from_a_file_url(tmp_path: Path) -> None:
    tarball = build_tarball(tmp_path / "model.tar", [file_member("model.pkl")], mode="w")

    extract_model_data(tarball.as_uri(), str(tmp_path / "model"))

    assert (tmp_path / "model" / "model.pkl").read_bytes() == b"data"


def test_remote_urls_are_copied_once_and_hashed(tmp_path: Path) -> None:
    import fsspec

    data = build_tarball(tmp_path / "model.tar.gz", [file_member("w.bin")]).read_bytes()
    with fsspec.open("memory://bucket/model.tar.gz", "wb") as sink:
        sink.write(data)

    digest = extract_model_data("memory://bucket/model.tar.gz", str(tmp_path / "model"))

    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "model" / "w.bin").read_bytes() == b"data"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file_member("/etc/cron.d/evil"), "absolute path"),
        (file_member("../evil"), "path contains '..'"),
        (file_member("weights/../../evil"), "path contains '..'"),
        (link_member("escape", "../outside"), "resolves outside the model directory"),
        (link_member("etc", "/etc"), "symbolic link to absolute path '/etc'"),
        (link_member("hard", "../outside", tarfile.LNKTYPE), "hard link target '../outside'"),
        (link_member("hard", "/etc/passwd", tarfile.LNKTYPE), "hard link target '/etc/passwd'"),
        (special_member("tty", tarfile.CHRTYPE), "device members are not allowed"),
        (special_member("disk", tarfile.BLKTYPE), "device members are not allowed"),
        (special_member("pipe", tarfile.FIFOTYPE), "FIFO members are not allowed"),
    ],
)
def test_unsafe_members_are_refused_before_anything_is_written(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None], reason: str
) -> None:
    # A harmless member first: rejection must leave nothing behind, not even it.
    tarball = build_tarball(tmp_path / "model.tar.gz", [file_member("good.txt"), member])
    model_dir = tmp_path / "model"

    with pytest.raises(UnsafeModelDataError) as caught:
        extract_model_data(str(tarball), str(model_dir))

    assert caught.value.member == member[0].name
    assert reason in str(caught.value)
    assert isinstance(caught.value, RuntimeStartError)
    assert not model_dir.exists()
    assert not (tmp_path / "outside").exists()


def test_links_that_escape_only_together_are_refused(tmp_path: Path) -> None:
    # Each link alone stays inside when read as text: `sub/up` is `sub/..` (the root)
    # and `out` is `sub/up/..` (`sub`). On disk `sub/up` IS the root, so `out` is the
    # root's parent: only following links as the kernel does catches it.
    tarball = build_tarball(
        tmp_path / "model.tar.gz",
        [
            link_member("sub/up", ".."),
            link_member("out", "sub/up/.."),
            file_member("out/model/evil.txt"),
        ],
    )

    with pytest.raises(UnsafeModelDataError) as caught:
        extract_model_data(str(tarball), str(tmp_path / "model"))

    assert caught.value.member == "out"


def test_files_written_through_an_escaping_link_chain_are_refused(tmp_path: Path) -> None:
    tarball = build_tarball(
        tmp_path / "model.tar.gz",
        [link_member("a", "b"), link_member("b", "a"), file_member("a/x")],
    )

    with pytest.raises(UnsafeModelDataError, match="'a/x'"):
        extract_model_data(str(tarball), str(tmp_path / "model"))


def test_missing_tarball_is_a_start_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeStartError, match="cannot read model data"):
        extract_model_data(str(tmp_path / "absent.tar.gz"), str(tmp_path / "model"))


def test_something_else_than_a_tarball_is_a_start_error(tmp_path: Path) -> None:
    not_a_tarball = tmp_path / "model.tar.gz"
    not_a_tarball.write_bytes(b"these are not the weights you are looking for")

    with pytest.raises(RuntimeStartError, match="could not be extracted"):
        extract_model_data(str(not_a_tarball), str(tmp_path / "model"))
