"""Running a network on pictures of any size: the tiled upscaler (precision, self-ensemble, any output
size), the original report's correction, and the ONNX backend."""
