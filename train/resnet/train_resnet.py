"""ResNet lesion classifier on snips (normal tissue, benign, malignant).

python train/resnet/train_resnet.py --data shards/ --out runs/classifier
"""

from mammolibs.train.cli import main

if __name__ == "__main__":
    main("classifier")
