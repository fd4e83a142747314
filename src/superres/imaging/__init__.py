"""Pixels in and out: reading and writing images (modes, bit depth, alpha, EXIF, ICC), the streaming PNG
encoder, MATLAB-exact resizing, colour conversions, atomic files, and image sets on disk."""
