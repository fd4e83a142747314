"""Bundled model weights (.safetensors), their manifest and measured results."""
