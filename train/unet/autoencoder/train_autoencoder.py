"""Autoencoder pretraining from the encoder: reconstruct masked, noised mammograms.

python train/unet/autoencoder/train_autoencoder.py --data shards/ --out runs/autoencoder --init runs/encoder
"""

from mammolibs.train.cli import main

if __name__ == "__main__":
    main("autoencoder")
