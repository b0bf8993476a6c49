"""Data: source readers, the standard form, shards and manifests, training views.

The names here are light to import (the command line's ``--help`` reads them).
"""

AUGMENTATIONS = {
    "strong": "left-right flips, affine, elastic, gamma, intensity scale and shift, noise",
    "scanner": "strong, plus what differs between scanners and hospitals: wider gamma, intensity curves, blur, "
    "speckle-like (Rician) noise, lower resolution",
    "flip": "left-right flips only",
    "none": "no augmentation (what validation sees)",
}
