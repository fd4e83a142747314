"""Output sizes: a factor, an exact size, or one side with the aspect kept; and which of a network's
scales to run for a factor (the smallest at or above it, then an exact resize)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from superres.errors import ConfigError
from superres.imaging.resize import output_shape_for


@dataclass(frozen=True)
class OutputSize:
    """How large the output is: a factor (any > 0, e.g. 2.5), an exact size, or a width or a height alone
    (the other side keeps the aspect ratio). Height and width may have different factors."""

    factor: float | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if (self.factor is None) == (self.width is None and self.height is None):
            raise ConfigError("give either a scale factor or an output width and/or height")
        if self.factor is not None and not (math.isfinite(self.factor) and self.factor > 0):
            raise ConfigError(f"scale must be a number > 0, got {self.factor}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"output {name} must be a whole number of pixels >= 1, got {value!r}")

    def shape_for(self, size: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the output for an input of `size` (height, width)."""
        h, w = size
        if self.factor is not None:
            return output_shape_for(size, self.factor)
        if self.width is not None and self.height is not None:
            return self.height, self.width
        if self.width is not None:
            return max(1, int(h * self.width / w + 0.5)), self.width
        assert self.height is not None  # __post_init__: without a factor, a width or a height is given
        return self.height, max(1, int(w * self.height / h + 0.5))

    def label(self) -> str:
        """For output names: 'x2.5', 'w1920', 'h1080' or '1920x1080'."""
        if self.factor is not None:
            return f"x{self.factor:g}"
        if self.width is not None and self.height is not None:
            return f"{self.width}x{self.height}"
        return f"w{self.width}" if self.width is not None else f"h{self.height}"


def network_scale(scales: tuple[int, ...], needed: float) -> int:
    """The scale to run before resizing to `needed`: the smallest at or above it, else the largest."""
    above = [s for s in scales if s >= needed - 1e-9]
    return min(above) if above else max(scales)
