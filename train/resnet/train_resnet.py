"""ResNet-18 lesion classifier on snips (normal tissue, benign, malignant), from its own encoder
pretraining (``train/unet/encoder/train_encoder.py --model flexible_unet``: FlexibleUNet's ResNet-18).

python train/unet/encoder/train_encoder.py --data shards/ --out runs/classifier-encoder --model flexible_unet
python train/resnet/train_resnet.py --data shards/ --out runs/classifier --init runs/classifier-encoder
"""

from mammolibs.train.cli import main

if __name__ == "__main__":
    main("classifier")
