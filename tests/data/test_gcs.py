"""``gs://`` input and output end to end against a GCS emulator, through gcsfs (what mammoflow uses)
and google-cloud-storage (what the test checks with)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from mammolibs.cli import main
from mammolibs.data.shards import iter_shard
from tests.data.layouts import film, write_csv, write_dicom


def _upload(client, bucket: str, folder, prefix: str) -> int:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    for path in files:
        client.bucket(bucket).blob(f"{prefix}/{path.relative_to(folder).as_posix()}").upload_from_filename(str(path))
    return len(files)


def test_standardize_reads_and_writes_gs_urls_and_reruns_write_nothing(gcs_bucket, mias_subset, tmp_path, capsys):
    bucket, client = gcs_bucket
    _upload(client, bucket, mias_subset, "raw/mias")
    clinic = tmp_path / "clinic"
    image, mask = film(lesion=(50, 40, 8))
    write_dicom(clinic / "a.dcm", image)
    Image.fromarray(mask.astype(np.uint8) * 255).save(clinic / "a_mask.png")
    write_csv(
        clinic / "labels.csv",
        ["image", "label", "mask"],
        [["a.dcm", "malignant", "a_mask.png"], ["missing.dcm", "benign", ""]],
    )
    _upload(client, bucket, clinic, "raw/clinic")
    out = f"gs://{bucket}/shards"

    argv = [
        "standardize",
        "--source",
        "mias",
        "--input",
        f"gs://{bucket}/raw/mias",
        "--source",
        "csv",
        "--input",
        f"gs://{bucket}/raw/clinic",
        "--output",
        out,
        "--image-size",
        "64",
        "--workers",
        "2",
        "--samples-per-shard",
        "8",
        "--no-progress",
    ]
    assert main(argv) == 3  # written, with one reject
    assert "26 inputs: 25 written, 1 rejected" in capsys.readouterr().out

    names = {blob.name for blob in client.list_blobs(bucket, prefix="shards/")}
    assert {"shards/manifest.json", "shards/rejects.jsonl", "shards/standardize.json"} <= names
    manifest = json.loads(client.bucket(bucket).blob("shards/manifest.json").download_as_bytes())
    assert manifest["counts"]["source"] == {"mias": 24, "csv": 1}
    assert all(f"shards/{s['name']}" in names for s in manifest["shards"])
    samples = [s for shard in manifest["shards"] for s in iter_shard(f"{out}/{shard['name']}")]
    assert len(samples) == 25 and all(s.image.shape == (64, 64) for s in samples)
    [reject] = [
        json.loads(line) for line in client.bucket(bucket).blob("shards/rejects.jsonl").download_as_text().splitlines()
    ]
    assert reject["file"] == "missing.dcm" and "cannot be read" in reject["reason"]  # relative to its --input

    generations = {b.name: b.generation for b in client.list_blobs(bucket, prefix="shards/")}
    assert main(argv) == 3
    assert "0 new shard(s)" in capsys.readouterr().out
    assert {b.name: b.generation for b in client.list_blobs(bucket, prefix="shards/")} == generations

    assert main(["data", "inspect", out]) == 0
    sheet = client.bucket(bucket).blob("shards/contact_sheet.png").download_as_bytes()
    assert sheet.startswith(b"\x89PNG")
