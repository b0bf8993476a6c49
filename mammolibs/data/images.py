"""Decoding image files (DICOM, PGM, PNG, TIFF, JPEG) at any URL into float arrays where brighter
means denser.

Sizes are checked from the header, before any pixel is decoded, so that a decompression bomb is
refused without allocating it.
"""

from __future__ import annotations

import io
import logging
import warnings
import zlib
from typing import IO, BinaryIO, cast

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.encaps import generate_frames
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from mammolibs import storage
from mammolibs.data.sample import RejectedInput

logging.getLogger("pydicom").setLevel(logging.CRITICAL)  # its log lines quote header values
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = (".png", ".pgm", ".tif", ".tiff", ".jpg", ".jpeg")
MAX_PIXELS = 100_000_000
"""Larger inputs are refused as implausible (a decompression bomb, not a mammogram)."""


def check_size(width: int, height: int, name: str, frames: int = 1) -> None:
    """Refuse absurd dimensions before decoding (the largest mammograms are about 5k x 6k pixels)."""
    if width <= 0 or height <= 0:
        raise RejectedInput(f"{name}: image header says {width}x{height} pixels; the file is damaged")
    if width * height * frames > MAX_PIXELS:
        raise RejectedInput(
            f"{name}: header says {width}x{height} pixels x {frames} frame(s), beyond any "
            f"mammogram (limit {MAX_PIXELS:,} pixels); refused before decoding"
        )


MAX_INPUT_BYTES = 4 * MAX_PIXELS
"""The largest input file read (images, tables): 16-bit pixels at :data:`MAX_PIXELS`, twice over."""


def open_input(url: str) -> IO[bytes]:
    """Open an input file for reading; an unreachable URL, or one that is no regular file of at most
    :data:`MAX_INPUT_BYTES`, becomes a reject naming it."""
    try:
        storage.check_regular_file(url, MAX_INPUT_BYTES)
        return storage.open_url(url)
    except ValueError as err:
        raise RejectedInput(str(err)) from err
    except Exception as err:  # fsspec back ends raise their own types for missing or forbidden objects
        raise RejectedInput(f"{url}: cannot be read ({type(err).__name__}: {err})") from err


def read_file_bytes(url: str) -> bytes:
    with open_input(url) as f:
        return f.read()


def read_dicom(url: str) -> tuple[np.ndarray, pydicom.Dataset]:
    """Pixel data of a mammography DICOM, display-ready and never inverted, and its header.

    The header is read first and its size checked; the pixels are then decoded straight from the
    file (no copy of the compressed data). Applies the modality LUT or rescale, then the VOI LUT
    or window when the file has one, then inverts MONOCHROME1 so that larger values are
    always denser tissue (:func:`display_pixels`). JPEG, JPEG 2000 and RLE decode through pylibjpeg.
    Corrupt files raise :class:`RejectedInput` naming the file.
    """
    with open_input(url) as f:
        return dicom_pixels(f, url)


def dicom_pixels(f: IO[bytes], name: str) -> tuple[np.ndarray, pydicom.Dataset]:
    """:func:`read_dicom` of an open file (or an upload in memory) called ``name`` in messages. No value of
    the header reaches a message or a log: pydicom's warnings (which quote values) are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = _header(f, name)
        columns, rows, frames = (_whole(ds, keyword, name) for keyword in ("Columns", "Rows", "NumberOfFrames"))
        check_size(columns or 0, rows or 0, name, frames or 1)
        check_codestreams(f, ds, name, (rows or 0, columns or 0), frames or 1)
        f.seek(0)
        try:
            if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                pixels = pydicom.dcmread(f).pixel_array  # inflated whole (its size checked by the header's read)
            else:
                pixels = pixel_array(cast(BinaryIO, f))  # straight from the file, no copy of the pixel data
        except AttributeError as err:
            raise RejectedInput(f"{name}: DICOM has no pixel data (not an image object?)") from err
        except Exception as err:  # pydicom raises many types for undecodable data
            raise RejectedInput(f"{name}: pixel data cannot be decoded ({_why_undecodable(ds, err)})") from err
        return display_pixels(pixels, ds, name), ds


JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
"""Start-of-frame markers of JPEG (baseline to lossless) and JPEG-LS (0xF7): each gives the frame's size."""


def codestream_size(frame: bytes, syntax: pydicom.uid.UID) -> tuple[int, int] | None:
    """(rows, columns) that a compressed frame's own header declares (JPEG, JPEG-LS, JPEG 2000), read
    without decoding it; ``None`` where it declares none (RLE, whose size is the dataset's)."""
    if syntax in JPEG2000TransferSyntaxes:
        siz = frame.find(b"\xff\x4f\xff\x51")  # SOC, then SIZ: Lsiz, Rsiz, Xsiz, Ysiz, XOsiz, YOsiz
        if siz < 0 or len(frame) < siz + 24:
            return (-1, -1)  # no size to check: not a codestream
        width, height, left, top = np.frombuffer(frame[siz + 8 : siz + 24], dtype=">u4").tolist()
        return height - top, width - left
    if syntax not in JPEGTransferSyntaxes + JPEGLSTransferSyntaxes:
        return None
    at = 2 if frame[:2] == b"\xff\xd8" else len(frame)  # SOI, then marker segments up to the frame header
    while 0 <= at <= len(frame) - 9 and frame[at] == 0xFF:
        marker, length = frame[at + 1], int.from_bytes(frame[at + 2 : at + 4], "big")
        if marker in JPEG_FRAME_MARKERS:
            return int.from_bytes(frame[at + 5 : at + 7], "big"), int.from_bytes(frame[at + 7 : at + 9], "big")
        at += 2 + length
    return (-1, -1)  # no frame header: not a codestream


def check_codestreams(f: IO[bytes], ds: pydicom.Dataset, name: str, expected: tuple[int, int], frames: int) -> None:
    """Refuse, before decoding, compressed pixel data whose ``frames`` declare another size than the
    header's ``expected`` (rows, columns): a decoder sizes its output by the codestream, so a small file
    could claim 64 x 64 and decode to 16384 x 16384."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or not syntax.is_compressed:
        return
    f.seek(0)
    pixel_data = pydicom.dcmread(f, specific_tags=["PixelData"]).get("PixelData")
    if pixel_data is None:
        return
    try:
        codestreams = list(generate_frames(pixel_data, number_of_frames=frames))
    except (ValueError, TypeError, IndexError):
        raise RejectedInput(
            f"{name}: its compressed pixel data cannot be split into frames; the file is damaged"
        ) from None
    for frame in codestreams:
        declared = codestream_size(frame, syntax)
        if declared == (-1, -1):
            raise RejectedInput(
                f"{name}: a frame of its pixel data is no {syntax.name} codestream; the file is damaged"
            )
        if declared is not None and declared != expected:
            raise RejectedInput(
                f"{name}: its compressed pixel data is {declared[0]} x {declared[1]} pixels, its header says "
                f"{expected[0]} x {expected[1]}; refused before decoding"
            )


def _whole(ds: pydicom.Dataset, keyword: str, name: str) -> int | None:
    """A whole-number attribute of the header, or a reject naming the attribute (never its value)."""
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        raise RejectedInput(f"{name}: its {keyword} is not a whole number; the header is damaged") from None


def _why_undecodable(ds: pydicom.Dataset, err: Exception) -> str:
    """What went wrong decoding, and what to do: a truncated file is not a missing decoder."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    # a standard syntax by its name; any other UID is a value of the file, never echoed
    name = syntax.name if syntax is not None and syntax.is_transfer_syntax else "(not a standard one)"
    text = " ".join(str(err).split())
    truncated = any(sign in text.lower() for sign in ("end of the data", "expected amount", "truncat"))
    if syntax is None or not getattr(syntax, "is_compressed", True) or "plugin" not in text.lower() or truncated:
        return f"transfer syntax {name}: {text}; the file is truncated or damaged: copy or export it again"
    return f"transfer syntax {name}: {text}; install a decoder for it or convert the file"


def display_pixels(stored: np.ndarray, ds: pydicom.Dataset, url: str) -> np.ndarray:
    """Stored DICOM pixels as pydicom's reference path displays them: the modality LUT (a Modality LUT
    Sequence, or rescale slope and intercept, negative slopes included), then the VOI LUT (a VOI LUT
    Sequence, or the window), then MONOCHROME1 inverted so that larger is denser. A VOI LUT table
    given fractional modality values (pydicom warns it cannot look those up) is refused."""
    if stored.ndim != 2:
        raise RejectedInput(f"{url}: expected one grey image, got pixel array of shape {stored.shape}")
    photometric = ds.get("PhotometricInterpretation", "MONOCHROME2")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise RejectedInput(
            f"{url}: its photometric interpretation is neither MONOCHROME1 nor MONOCHROME2: not a grey mammogram"
        )
    if ("RescaleSlope" in ds) != ("RescaleIntercept" in ds):
        raise RejectedInput(f"{url}: RescaleSlope and RescaleIntercept come together; this file has only one of them")
    try:
        pixels = _displayed(stored, ds, url)
    except RejectedInput:
        raise
    except (TypeError, ValueError, ArithmeticError, IndexError, KeyError) as err:  # a malformed slope, window or LUT
        raise RejectedInput(
            f"{url}: its rescale, window or LUT values cannot be applied ({type(err).__name__}); the header is damaged"
        ) from None
    if not np.isfinite(pixels).all():
        raise RejectedInput(
            f"{url}: its rescale or window values make pixels infinite or undefined; the header is damaged"
        )
    if photometric == "MONOCHROME1":
        pixels = pixels.max() - pixels
    return pixels


def _displayed(stored: np.ndarray, ds: pydicom.Dataset, url: str) -> np.ndarray:
    """The modality LUT, then the VOI LUT or window, as :func:`display_pixels` says."""
    pixels = apply_modality_lut(stored, ds)
    if "VOILUTSequence" in ds:
        if not np.array_equal(pixels, np.round(pixels)):
            raise RejectedInput(
                f"{url}: a VOI LUT table after a fractional rescale cannot be looked up exactly; "
                "export the file with its window instead"
            )
        pixels = apply_voi_lut(pixels.astype(np.int64), ds, index=0, prefer_lut=True)
    elif "WindowCenter" in ds:
        pixels = apply_voi_lut(pixels, ds, index=0)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(pixels, dtype=np.float32)


def read_dicom_header(url: str) -> pydicom.Dataset:
    """The attributes of a DICOM file without its pixel data."""
    with open_input(url) as f:
        return _header(f, url)


def _header(f: IO[bytes], url: str) -> pydicom.Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings quote the values they find odd
            check_inflated_size(f, url)
            f.seek(0)
            return pydicom.dcmread(f, stop_before_pixels=True)
    except RejectedInput:
        raise
    except Exception as err:  # its text may quote a value of the header: only its kind is said
        raise RejectedInput(f"{url}: not a readable DICOM file ({type(err).__name__})") from None


INFLATE_CHUNK = 1 << 20


def check_inflated_size(f: IO[bytes], name: str, limit: int = MAX_INPUT_BYTES) -> None:
    """Refuse a deflated DICOM (the whole dataset zlib-compressed) that inflates to more than ``limit``
    bytes, counted in 1 MiB steps without keeping them: pydicom inflates such a file whole, at once,
    before any size in its header can be checked (a 1 MB file can inflate to gigabytes)."""
    f.seek(0)
    read_preamble(cast(BinaryIO, f), force=True)
    if _read_file_meta_info(cast(BinaryIO, f)).get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    inflate, size, pending = zlib.decompressobj(-zlib.MAX_WBITS), 0, f.read()
    while True:
        out = len(inflate.decompress(pending, INFLATE_CHUNK))
        size += out
        if size > limit:
            raise RejectedInput(f"{name}: its deflated data inflate to over {limit:,} bytes; refused before decoding")
        pending = inflate.unconsumed_tail
        if inflate.eof or (not pending and out < INFLATE_CHUNK):
            return


def read_grey(url: str) -> np.ndarray:
    """Read a PGM/PNG/TIFF/JPEG as a float32 grey image; RGB files of grey content are averaged."""
    return grey_pixels(read_file_bytes(url), url)


def grey_pixels(data: bytes, name: str) -> np.ndarray:
    """:func:`read_grey` of a file's bytes, called ``name`` in messages."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            check_size(*img.size, name)
            img.load()
            array = grey_levels(img)
    except RejectedInput:
        raise
    except UnidentifiedImageError:
        raise RejectedInput(f"{name}: not a readable image (neither DICOM nor PGM, PNG, TIFF or JPEG)") from None
    except Exception as err:
        raise RejectedInput(f"{name}: not a readable image ({type(err).__name__}: {err})") from err
    return array.astype(np.float32)


GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
"""Pillow modes whose values are grey levels as they are; every other mode goes through Pillow's own
conversion (palette indices and colours never reach the data as if they were grey levels)."""


def grey_levels(img: Image.Image) -> np.ndarray:
    """The grey levels of a decoded image: grey modes as stored, grey with alpha without its alpha,
    palette and colour modes converted to RGB by Pillow and averaged (RGB files of grey content)."""
    if img.mode in GREY_MODES:
        return np.asarray(img)
    if img.mode == "LA":
        return np.asarray(img.getchannel("L"))
    return np.asarray(img.convert("RGB"), dtype=np.float32).mean(axis=-1)


def read_any(url: str) -> np.ndarray:
    """Decode a DICOM or a plain image file, chosen by suffix."""
    if url.lower().endswith(DICOM_SUFFIXES):
        return read_dicom(url)[0]
    return read_grey(url)


def is_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file (``DICM`` after the 128-byte preamble), whatever its name."""
    return data[128:132] == b"DICM"


def decode_upload(data: bytes, name: str) -> tuple[np.ndarray, str | None]:
    """An image file's bytes (DICOM by its content, else PGM/PNG/TIFF/JPEG through Pillow) as
    (grey pixels, the modality a DICOM declares or ``None``). Nothing of a DICOM header but its
    modality is kept; anything else raises :class:`RejectedInput` naming ``name``."""
    if is_dicom(data) or name.lower().endswith(DICOM_SUFFIXES):
        pixels, ds = dicom_pixels(io.BytesIO(data), name)
        modality = str(ds.get("Modality", "") or "").upper()
        return pixels, modality if modality in ("MG", "US") else None
    return grey_pixels(data, name), None


def read_mask(url: str) -> np.ndarray:
    """A binary mask file (1-bit, 8-bit or RGB) as a bool array."""
    return read_grey(url) > 0
