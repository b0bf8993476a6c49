"""Data: source readers, the standard form, shards and manifests, training views.

The names here are light to import (the command line's ``--help`` reads them).
"""

AUGMENTATIONS = {
    "strong": "left-right flips, affine, elastic, gamma, intensity scale and shift, noise",
    "flip": "left-right flips only",
    "none": "no augmentation (what validation sees)",
}
