"""Decoding image files (DICOM, PGM, PNG) into float arrays where brighter means denser."""
from __future__ import annotations

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from mammolibs.data.sample import RejectedInput

DICOM_SUFFIXES = (".dcm", ".dicom")


def decode_dicom(ds: pydicom.Dataset, name: str) -> np.ndarray:
    """Pixel data of a mammography DICOM as float32, display-ready and never inverted.

    Applies the modality LUT (rescale slope/intercept), then the VOI LUT or window when the file
    has one, then inverts MONOCHROME1 so that larger values are always denser tissue. Compressed
    transfer syntaxes (JPEG, JPEG 2000, RLE) decode through pylibjpeg.
    """
    if "PixelData" not in ds:
        raise RejectedInput(f"{name}: DICOM has no pixel data (not an image object?)")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for undecodable data
        raise RejectedInput(f"{name}: pixel data cannot be decoded ({err}); is a pylibjpeg plugin missing?") from err
    if pixels.ndim != 2:
        raise RejectedInput(f"{name}: expected one grey image, got pixel array of shape {pixels.shape}")
    values = apply_modality_lut(pixels, ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds, index=0)
    values = np.asarray(values, dtype=np.float32)
    if ds.get("PhotometricInterpretation", "MONOCHROME2") == "MONOCHROME1":
        values = values.max() - values
    return values


def read_dicom(path: str) -> tuple[np.ndarray, pydicom.Dataset]:
    """Read and decode a DICOM file; corrupt files raise :class:`RejectedInput` naming the file."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:
        raise RejectedInput(f"{path}: not a readable DICOM file ({err})") from err
    return decode_dicom(ds, path), ds


def read_grey(path: str) -> np.ndarray:
    """Read a PGM/PNG/TIFF as a float32 grey image; RGB files of grey content are averaged."""
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img)
    except Exception as err:
        raise RejectedInput(f"{path}: not a readable image ({err})") from err
    if array.ndim == 3:
        array = array[..., :3].mean(axis=-1)
    return array.astype(np.float32)


def read_any(path: str) -> np.ndarray:
    """Decode a DICOM or a plain image file, chosen by suffix."""
    if path.lower().endswith(DICOM_SUFFIXES):
        return read_dicom(path)[0]
    return read_grey(path)


def read_mask(path: str) -> np.ndarray:
    """A binary mask file (1-bit, 8-bit or RGB) as a bool array."""
    return read_grey(path) > 0
