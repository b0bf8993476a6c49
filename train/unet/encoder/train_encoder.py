"""Self-supervised encoder pretraining (NT-Xent on two augmented views of each image).

python train/unet/encoder/train_encoder.py --data shards/ --out runs/encoder --epochs 10
"""

from mammolibs.train.cli import main

if __name__ == "__main__":
    main("encoder")
