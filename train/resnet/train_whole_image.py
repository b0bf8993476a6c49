"""Baseline: a ResNet-18 scoring whole images benign or malignant (what the snip classifier is measured
against).

python train/resnet/train_whole_image.py --data shards/ --out runs/whole_image
"""

from mammolibs.train.cli import main

if __name__ == "__main__":
    main("whole_image")
