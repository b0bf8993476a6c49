"""Shard sets are untrusted input: an index, a manifest or a tar member that names a path outside its
set, a member that is missing or not a file, or a mask that inflates like a bomb, is refused with a
one-line error by merge, inspect, training and evaluation, and nothing is read or written outside the
folders given."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from mammolibs.cli import main
from mammolibs.data.inspect import inspect
from mammolibs.data.merge import merge_shard_sets
from mammolibs.data.shard_set import ShardSet
from mammolibs.data.shards import _tar_members, _tarfile_members, decode_mask_png, iter_shard, shard_members
from mammolibs.data.stream import ShardStream, replica_parts, split_shards
from mammolibs.data.views import SegmentationView

MARKER = b"SECRET-OUTSIDE-THE-SET"


@pytest.fixture()
def hostile(small_shards, tmp_path) -> tuple[Path, Path]:
    """A copy of a real shard set, and beside it (outside the set) a valid-looking shard holding a marker."""
    data = tmp_path / "set"
    shutil.copytree(small_shards, data)
    secret = tmp_path / "secret"
    secret.mkdir()
    first = sorted(data.glob("shard-train-*.tar"))[0]
    (secret / "file.tar").write_bytes(first.read_bytes() + MARKER)
    return data, secret / "file.tar"


def files_outside(root: Path, inside: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and inside not in p.parents}


def edit_json(path: Path, change) -> None:
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def first_index(data: Path) -> Path:
    return sorted(data.glob("shard-train-*.index.json"))[0]


def rewrite_shard(data: Path, change_members) -> Path:
    """Rebuild the first train shard with ``change_members(list of (TarInfo, bytes))`` and give its index
    the new SHA-256 (as an attacker who writes both would)."""
    index = first_index(data)
    shard = data / json.loads(index.read_text())["name"]
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    members = change_members(members)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, payload in members:
            info.size = len(payload) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    shard.write_bytes(buffer.getvalue())
    edit_json(index, lambda i: i.update(sha256=hashlib.sha256(buffer.getvalue()).hexdigest()))
    return shard


def bomb_png(width: int, height: int, factor: int = 1000) -> bytes:
    """A 1-bit PNG header for ``width`` x ``height`` whose data inflates ``factor`` times past it."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"\0" * (height * (1 + (width + 7) // 8) * factor)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "../secret/file.tar"),
        ("name", "ABSOLUTE"),
        ("name", "file://ABSOLUTE"),
        ("name", "shard-train-00000.tar/../../secret/file.tar"),
        ("split", "x/../../escaped"),
        ("split", "../../escaped"),
    ],
)
def test_an_index_naming_a_path_outside_its_set_is_refused_everywhere(hostile, tmp_path, capsys, field, value):
    data, secret = hostile
    value = value.replace("ABSOLUTE", str(secret))
    edit_json(
        first_index(data),
        lambda index: index.update(
            {field: value, "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
            if field == "name"
            else {field: value}
        ),
    )
    before = files_outside(tmp_path, tmp_path / "out")
    out = tmp_path / "out"
    assert main(["data", "merge", "--output", str(out), "--no-progress", str(data)]) == 2
    error = capsys.readouterr().err.strip()
    assert first_index(data).name in error and "standardize the source again" in error and "\n" not in error
    assert files_outside(tmp_path, out) == before and not out.exists()
    for reads in (
        lambda: split_shards(str(data), "train"),
        lambda: merge_shard_sets([str(data)], str(tmp_path / "again"), progress=False),
    ):
        with pytest.raises(ValueError, match="is not"):
            reads()


@pytest.mark.parametrize(
    "value", ["../secret/file.tar", "ABSOLUTE", "gs://another-bucket/shard-train-00000.tar", "OTHER SPLIT"]
)
def test_a_manifest_naming_a_path_outside_its_set_is_refused(hostile, tmp_path, value):
    data, secret = hostile
    value = value.replace("ABSOLUTE", str(secret))
    manifest = json.loads((data / "manifest.json").read_text())
    other = "val" if manifest["shards"][0]["split"] != "val" else "test"
    edit_json(
        data / "manifest.json",
        lambda m: m["shards"][0].update(name=value.replace("OTHER SPLIT", f"shard-{other}-00000.tar")),
    )
    before = files_outside(tmp_path, tmp_path / "none")
    for reads in (
        lambda: inspect(str(data), str(tmp_path / "sheet.png")),
        lambda: ShardSet.open(str(data)).samples("train"),
        lambda: split_shards(str(data), "train"),
    ):
        with pytest.raises(ValueError, match="manifest.json: shard name .* is not a name like"):
            reads()
    assert files_outside(tmp_path, tmp_path / "none") == before


@pytest.mark.parametrize("attack", ["traversal", "symlink", "odd kind"])
def test_tar_members_are_read_by_checked_names_only(hostile, tmp_path, attack):
    data, secret = hostile

    def change(members):
        info, payload = members[0]
        if attack == "traversal":
            info.name = "../../secret/" + info.name
        elif attack == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, str(secret)
        else:
            info.name = info.name.split(".")[0] + ".exe"
        return members

    shard = rewrite_shard(data, change)
    with pytest.raises(ValueError, match=f"{shard.name}: member") as raised:
        merge_shard_sets([str(data)], str(tmp_path / "out"), progress=False)
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="member"):
        list(iter_shard(str(shard)))
    assert not (tmp_path / "out" / "manifest.json").exists()  # refused shards are never copied: no usable set
    assert shard.read_bytes() not in [p.read_bytes() for p in (tmp_path / "out").iterdir()]


def test_a_sample_listed_but_missing_is_a_clear_error_not_a_key_error(hostile, tmp_path):
    data, _ = hostile
    gone = json.loads(first_index(data).read_text())["contents"][0]["key"]
    rewrite_shard(data, lambda members: [(i, p) for i, p in members if not i.name.startswith(gone + ".")])
    with pytest.raises(ValueError, match="holds other samples than its index lists"):
        merge_shard_sets([str(data)], str(tmp_path / "out"), progress=False)
    view = SegmentationView(0, "none")
    stream = ShardStream(str(data), replica_parts(split_shards(str(data), "train"), view, 0, 1), view, 2, 0, 0, False)
    with pytest.raises(ValueError, match=f"sample {gone} is listed in its index but missing from the shard"):
        list(stream)


@pytest.mark.parametrize("aim", ["another sample", "past the end", "half a sample"])
def test_a_span_that_does_not_hold_its_sample_is_refused_never_read_as_it(hostile, tmp_path, aim):
    data, _ = hostile
    first, second = json.loads(first_index(data).read_text())["contents"][:2]
    span = {
        "another sample": second["span"],
        "past the end": [second["span"][0] + (1 << 20), first["span"][1]],
        "half a sample": [first["span"][0], first["span"][1] // 1024 * 512],
    }[aim]
    edit_json(first_index(data), lambda i: i["contents"][0].update(span=span))
    complaint = (
        f"sample {first['key']} is listed in its index but missing from the shard at bytes|"
        f"member '{first['key']}.npy' is cut short"
    )
    with pytest.raises(ValueError, match=complaint):
        merge_shard_sets([str(data)], str(tmp_path / "out"), progress=False)
    view = SegmentationView(0, "none")
    stream = ShardStream(str(data), replica_parts(split_shards(str(data), "train"), view, 0, 1), view, 2, 0, 0, False)
    with pytest.raises(ValueError, match=complaint):
        list(stream)


def test_a_mask_that_inflates_like_a_bomb_is_refused_before_it_is_decoded(hostile, tmp_path):
    data, _ = hostile
    side = json.loads((data / "manifest.json").read_text())["image_size"]
    with pytest.raises(ValueError, match="decompression bomb"):
        decode_mask_png(bomb_png(side, side), (side, side), "test")
    with pytest.raises(ValueError, match="the mask is 60000x60000, its image"):
        decode_mask_png(bomb_png(60000, 60000, factor=1), (side, side), "test")

    def plant(members):
        return [
            (info, bomb_png(side, side) if info.name.endswith(".mask.png") else payload) for info, payload in members
        ]

    shard = rewrite_shard(data, plant)
    with pytest.raises(ValueError, match=f"{shard.name} sample .*: the mask's data does not inflate"):
        list(iter_shard(str(shard)))


def test_index_fields_that_are_not_what_mammoflow_writes_are_refused(hostile, tmp_path):
    data, _ = hostile
    for change, complaint in (
        (lambda i: i["contents"][0].update(key="../../etc/passwd"), "sample key"),
        (lambda i: i["contents"][0].update(label="lethal"), "label"),
        (lambda i: i.update(samples=i["samples"] + 1), "samples"),
        (lambda i: i.update(sha256="../x"), "sha256"),
        (lambda i: i.update(name="shard-val-00000.tar"), "shard name"),
        (lambda i: i["contents"][0].pop("span"), "span"),  # a set written before spans: standardize again
        (lambda i: i["contents"][0].update(span=[1, 512]), "span"),
        (lambda i: i["contents"][0].update(span=[0, 1 << 40]), "span"),
        (lambda i: i["contents"][0].update(span="0-512"), "span"),
    ):
        copy = tmp_path / f"set-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(data, copy)
        edit_json(first_index(copy), change)
        with pytest.raises(ValueError, match=complaint):
            merge_shard_sets([str(copy)], str(tmp_path / "out"), progress=False)
    (data / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json: not valid JSON"):
        split_shards(str(data), "train")


def test_the_direct_tar_reader_agrees_with_tarfile_and_leaves_it_all_else(hostile, tmp_path):
    data, _ = hostile
    shard = data / json.loads(first_index(data).read_text())["name"]
    blob = shard.read_bytes()
    assert _tar_members(blob) == _tarfile_members(blob) and len(_tar_members(blob)) >= 6
    long_key = "k" * 120  # a name over 100 characters: a PAX header, which the direct reader leaves to tarfile
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for kind in ("npy", "mask.png", "json"):
            info = tarfile.TarInfo(f"{long_key}.{kind}")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    assert [m[0] for m in _tar_members(buffer.getvalue())] == [f"{long_key}.{k}" for k in ("npy", "mask.png", "json")]
    damaged = bytearray(blob)
    damaged[10] ^= 0xFF  # a header byte: its checksum no longer matches
    with pytest.raises(ValueError, match="not a readable tar shard"):
        shard_members(bytes(damaged), str(shard))
