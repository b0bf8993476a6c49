"""U-Net lesion segmentation, finetuned from the autoencoder (BCE + Dice).

python train/unet/finetune.py --data shards/ --out runs/finetune --init runs/autoencoder
"""

from mammolibs.train.cli import main

if __name__ == "__main__":
    main("finetune")
