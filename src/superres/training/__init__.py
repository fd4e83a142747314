"""Training: settings (TrainConfig), patch sampling with augmentations, and the resumable loop."""
