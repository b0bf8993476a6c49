"""No silently wrong pixels: a generated corpus of DICOM photometric interpretations, pixel
representations, rescales and LUTs, and of PNG modes, decodes exactly as the reference libraries do
(pydicom's ``apply_modality_lut`` then ``apply_voi_lut``, MONOCHROME1 inverted; Pillow's own mode
conversions), or is rejected with its reason."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit

from mammolibs.data.images import MAX_INPUT_BYTES, decode_upload, read_dicom, read_grey
from mammolibs.data.sample import RejectedInput
from tests.data.layouts import film, write_dicom


def lut_item(first: int, values: np.ndarray, **tags) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", [len(values), first, 16])  # LUT Descriptor: entries, first input, bits
    item.add_new(0x00283006, "US", [int(v) for v in values])  # LUT Data
    for keyword, value in tags.items():
        setattr(item, keyword, value)
    return item


def signed_film() -> np.ndarray:
    return film()[0].astype(np.int32) - 2048  # a 12-bit film stored around zero


VARIANTS = {
    "monochrome2": {},
    "monochrome1": {"PhotometricInterpretation": "MONOCHROME1"},
    "signed": {"PixelRepresentation": 1, "stored": signed_film},
    "rescale": {"RescaleSlope": "2.5", "RescaleIntercept": "-100"},
    "negative slope": {"RescaleSlope": "-1", "RescaleIntercept": "4095"},
    "signed, negative slope, monochrome1": {
        "PixelRepresentation": 1,
        "stored": signed_film,
        "RescaleSlope": "-0.5",
        "RescaleIntercept": "10",
        "PhotometricInterpretation": "MONOCHROME1",
    },
    "modality LUT": {
        "ModalityLUTSequence": lambda: [lut_item(0, (np.arange(4096) ** 2 // 4096), ModalityLUTType="OD")]
    },
    "window after rescale": {
        "RescaleSlope": "2",
        "RescaleIntercept": "-50",
        "WindowCenter": "2500",
        "WindowWidth": "3000",
    },
    "window, monochrome1": {"WindowCenter": "1500", "WindowWidth": "1000", "PhotometricInterpretation": "MONOCHROME1"},
    "VOI LUT table": {"VOILUTSequence": lambda: [lut_item(0, 4095 - np.arange(4096))]},
    "VOI LUT table after an integer rescale": {
        "RescaleSlope": "1",
        "RescaleIntercept": "1000",
        "VOILUTSequence": lambda: [lut_item(1000, np.arange(4096) // 2)],
    },
    "modality LUT then window": {
        "ModalityLUTSequence": lambda: [lut_item(0, 4095 - np.arange(4096))],
        "WindowCenter": "2000",
        "WindowWidth": "2000",
    },
}
REFUSED = {
    "VOI LUT table after a fractional rescale": (
        {"RescaleSlope": "0.3", "RescaleIntercept": "0", "VOILUTSequence": lambda: [lut_item(0, np.arange(4096))]},
        "VOI LUT table after a fractional rescale",
    ),
    "a slope without its intercept": ({"RescaleSlope": "2"}, "come together"),
    "palette colour": ({"PhotometricInterpretation": "PALETTE COLOR"}, "not a grey mammogram"),
}


def make(path, tags: dict):
    tags = dict(tags)
    stored = tags.pop("stored", lambda: film()[0])()
    sequences = {k: tags.pop(k)() for k in [k for k in tags if k.endswith("Sequence")]}
    write_dicom(
        path, stored.astype(np.uint16) if stored.min() >= 0 else stored.astype(np.int16).view(np.uint16), **tags
    )
    ds = pydicom.dcmread(path)
    for keyword, value in sequences.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def reference(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    pixels = apply_modality_lut(ds.pixel_array, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        pixels = apply_voi_lut(pixels, ds, index=0)
    pixels = np.asarray(pixels, dtype=np.float32)
    return pixels.max() - pixels if ds.PhotometricInterpretation == "MONOCHROME1" else pixels


@pytest.mark.parametrize("variant", VARIANTS)
def test_dicom_variants_decode_as_pydicom_displays_them(variant, tmp_path):
    path = make(tmp_path / "film.dcm", VARIANTS[variant])
    decoded, _ = read_dicom(str(path))
    expected = reference(path)
    assert decoded.dtype == np.float32 and decoded.shape == expected.shape
    np.testing.assert_allclose(decoded, expected, rtol=1e-6, atol=1e-3)
    assert np.ptp(decoded) > 0


@pytest.mark.parametrize("variant", REFUSED)
def test_dicom_variants_that_cannot_be_decoded_exactly_are_rejected_with_a_reason(variant, tmp_path):
    tags, reason = REFUSED[variant]
    path = make(tmp_path / "film.dcm", tags)
    with pytest.raises(RejectedInput, match=reason):
        read_dicom(str(path))


def grey() -> np.ndarray:
    return (film()[0] // 16).astype(np.uint8)


PNG_MODES = {
    "L": lambda: Image.fromarray(grey(), "L"),
    "I;16": lambda: Image.fromarray(film()[0].astype(np.uint16) * 16),
    "1": lambda: Image.fromarray(grey() > 100),
    "LA": lambda: Image.merge("LA", (Image.fromarray(grey()), Image.new("L", grey().shape[::-1], 7))),
    "RGB": lambda: Image.fromarray(np.repeat(grey()[..., None], 3, axis=2), "RGB"),
    "RGBA": lambda: Image.fromarray(
        np.dstack([np.repeat(grey()[..., None], 3, axis=2), np.full(grey().shape, 9, np.uint8)]), "RGBA"
    ),
    "P, grey palette reversed": lambda: _palette(255 - np.arange(256)),
    "P, grey palette shuffled": lambda: _palette(np.random.default_rng(0).permutation(256)),
    "TIFF I;16": lambda: Image.fromarray(film()[0].astype(np.uint16) * 16),
    "JPEG CMYK": lambda: Image.fromarray(np.repeat(grey()[..., None], 3, axis=2), "RGB").convert("CMYK"),
}
SUFFIX = {"TIFF I;16": ".tif", "JPEG CMYK": ".jpg"}


def _palette(levels: np.ndarray) -> Image.Image:
    image = Image.fromarray(grey(), "P")
    image.putpalette(np.repeat(levels.astype(np.uint8)[:, None], 3, axis=1).ravel().tolist())
    return image


def pillow_reference(image: Image.Image) -> np.ndarray:
    if image.mode in ("L", "I;16", "I;16B", "1"):
        return np.asarray(image).astype(np.float32)
    if image.mode == "LA":
        return np.asarray(image.getchannel("L")).astype(np.float32)
    return np.asarray(image.convert("RGB")).astype(np.float32).mean(axis=-1)


@pytest.mark.parametrize("mode", PNG_MODES)
def test_image_modes_decode_to_grey_levels_as_pillow_converts_them(mode, tmp_path):
    path = tmp_path / ("image" + SUFFIX.get(mode, ".png"))
    PNG_MODES[mode]().save(path)
    decoded = read_grey(str(path))
    expected = pillow_reference(Image.open(path))
    np.testing.assert_array_equal(decoded, expected)
    if mode.startswith("P"):  # palette indices never pass for grey levels
        assert not np.array_equal(decoded, np.asarray(Image.open(path)).astype(np.float32))
    if mode == "JPEG CMYK":  # ink, not light: Pillow's conversion gives the grey back, not 4 channels averaged
        assert abs(float(decoded.mean()) - float(grey().mean())) < 3


def _compressed_dicom(path, codestream: bytes, syntax, rows: int, columns: int):
    """An 8-bit grey DICOM whose header says ``rows`` x ``columns`` and whose pixel data is ``codestream``."""
    write_dicom(path, np.zeros((rows, columns), np.uint16))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("codec, syntax", [("JPEG", JPEGBaseline8Bit), ("JPEG2000", JPEG2000Lossless)])
def test_compressed_pixels_larger_than_the_header_says_are_refused_before_decoding(codec, syntax, tmp_path):
    grey = (film()[0][:64, :64] // 16).astype(np.uint8)
    small, big = (io.BytesIO(), io.BytesIO())
    Image.fromarray(grey).save(small, codec)
    Image.fromarray(np.tile(grey, (40, 40))).save(big, codec)  # 2560 x 2560 in a few kB
    honest = _compressed_dicom(tmp_path / "honest.dcm", small.getvalue(), syntax, 64, 64)
    reference = np.asarray(Image.open(io.BytesIO(small.getvalue())), dtype=np.float32)
    error = np.abs(read_dicom(str(honest))[0] - reference).max()
    assert error <= (1 if codec == "JPEG" else 0)  # as Pillow decodes it (lossy JPEG decoders may differ by 1)
    lying = _compressed_dicom(tmp_path / "lying.dcm", big.getvalue(), syntax, 64, 64)
    with pytest.raises(RejectedInput, match=r"lying.dcm: its compressed pixel data is 2560 x 2560 pixels, its header"):
        read_dicom(str(lying))
    garbage = _compressed_dicom(tmp_path / "garbage.dcm", b"\0" * 64, syntax, 64, 64)
    with pytest.raises(RejectedInput, match="garbage.dcm: a frame of its pixel data is no"):
        read_dicom(str(garbage))


def test_a_deflated_dicom_decodes_and_one_that_inflates_like_a_bomb_is_refused_before_inflating(tmp_path):
    pixels = film()[0][:128, :96]
    plain = write_dicom(tmp_path / "plain.dcm", pixels)
    ds = pydicom.dcmread(plain)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    deflated = (tmp_path / "deflated.dcm").read_bytes()
    np.testing.assert_array_equal(read_dicom(str(tmp_path / "deflated.dcm"))[0], read_dicom(str(plain))[0])
    meta_end = 144 + int.from_bytes(deflated[140:144], "little")  # after the file meta's group length
    dataset = zlib.decompress(deflated[meta_end:], -zlib.MAX_WBITS)
    padding = (MAX_INPUT_BYTES // 2**24 + 1) * 2**24  # Data Set Trailing Padding (FFFC,FFFC), OB: zeros
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = [deflate.compress(dataset + b"\xfc\xff\xfc\xffOB\0\0" + padding.to_bytes(4, "little"))]
    zeros = bytes(2**24)
    stream += [deflate.compress(zeros) for _ in range(padding // len(zeros))] + [deflate.flush()]
    bomb = deflated[:meta_end] + b"".join(stream)
    assert len(bomb) < 2 * 2**20
    (tmp_path / "bomb.dcm").write_bytes(bomb)
    with pytest.raises(RejectedInput, match=r"bomb.dcm: its deflated data inflate to over [\d,]+ bytes; refused"):
        read_dicom(str(tmp_path / "bomb.dcm"))
    with pytest.raises(RejectedInput, match="upload.dcm: its deflated data inflate"):
        decode_upload(bomb, "upload.dcm")  # the server's path: the same check before pydicom inflates it
