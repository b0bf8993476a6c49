"""Phantom mammograms with lesions, written in the mini-MIAS layout (``mdbNNN.pgm`` + ``Info.txt``).

They let the supervised stages run anywhere without a download. Benign lesions are smooth round
masses; malignant ones are denser and spiculated, so a classifier has something real to learn.
The result reads with the same ``mias`` reader as the real films.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

SIZE = 1024


def _breast(rng: np.random.Generator, right: bool) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    depth, height = rng.uniform(0.55, 0.75) * SIZE, rng.uniform(0.40, 0.48) * SIZE
    chest = SIZE - 1 - cols if right else cols  # chest wall on the image edge of that side
    region = (chest / depth) ** 2 + ((rows - SIZE / 2) / height) ** 2 <= 1.0
    texture = gaussian_filter(rng.normal(0, 1, (SIZE, SIZE)).astype(np.float32), 12)
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-6)
    return region * (0.35 + 0.25 * texture + 0.1 * (1 - chest / SIZE)), region


def _lesion(rng: np.random.Generator, radius: float, malignant: bool) -> np.ndarray:
    span = int(radius * 2.5)
    rows, cols = np.mgrid[-span : span + 1, -span : span + 1].astype(np.float32)
    distance, angle = np.hypot(rows, cols), np.arctan2(rows, cols)
    if malignant:
        spikes = rng.integers(7, 13)
        edge = radius * (1 + 0.45 * np.maximum(0, np.cos(spikes * angle + rng.uniform(0, 6))) ** 8)
        return 0.25 * (distance <= edge) + 0.08 * (distance <= radius * 2.2) * (np.cos(spikes * angle) > 0.95)
    return 0.15 * np.clip(1.2 - (distance / radius) ** 4, 0, 1)


def write_phantom_mias(folder: str, films: int = 96, seed: int = 0) -> str:
    """Write ``films`` phantom films (an even number: pairs of one patient) into ``folder``.

    About a third are normal, a third benign, a third malignant; one malignant film lists a
    calcification without coordinates and one benign film has two lesions, as in real ``Info.txt``.
    Returns ``folder``.
    """
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["Phantom films in the mini-MIAS layout, written by mammoflow.", ""]
    for number in range(1, films + 1):
        ref, right = f"mdb{number:03d}", number % 2 == 1
        image, region = _breast(rng, right)
        kind = ("NORM", "B", "M")[number % 3]
        tissue = "FGD"[number % 3]
        if kind == "NORM":
            lines.append(f"{ref} {tissue} NORM")
        else:
            count = 2 if number == 4 else 1
            for _ in range(count):
                inside = np.argwhere(region[200:-200, 200:-200]) + 200
                row, col = inside[rng.integers(len(inside))]
                radius = float(rng.uniform(18, 40))
                patch = _lesion(rng, radius, kind == "M")
                half = patch.shape[0] // 2
                image[row - half : row + half + 1, col - half : col + half + 1] += patch
                klass = "SPIC" if kind == "M" else "CIRC"
                lines.append(f"{ref} {tissue} {klass} {kind} {col} {SIZE - 1 - row} {int(round(radius))}")
            if number == 3:
                lines.append(f"{ref} {tissue} CALC M *NOTE 3*")
        noisy = image + rng.normal(0, 0.01, image.shape) * region
        pixels = np.clip(noisy * 255, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{ref}.pgm"))
    with open(os.path.join(folder, "Info.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return folder
