"""superres: image super-resolution with EDSR."""
from superres.resize import imresize
