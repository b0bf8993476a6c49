"""Two-stage inference (U-Net finds lesions, ResNet scores them), metrics and pictures."""
