"""Input validation and static spatial-size bookkeeping shared by the image models.

The CNN factories of :mod:`.convnets` and the Omniglot encoder of :mod:`.few_shot` track the spatial size of
their feature maps while they are built, so that a ``'valid'`` conv or pool that would leave a side smaller
than 1 on a tiny input (the offline 8x8 digits) can switch to ``'same'`` padding (``adapt_to_small_inputs``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

Shape = Tuple[Optional[int], ...]
_HW = Tuple[Optional[int], Optional[int]]


def _image_shape(input_shape: Sequence[Optional[int]], name: str = "input_shape") -> Shape:
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(f"{name} must be (height, width, channels) (channels-last), got {input_shape!r}")
    for s in shape:
        if s is not None and (not isinstance(s, int) or s < 1):
            raise ValueError(f"{name} must contain positive integers or None, got {input_shape!r}")
    if shape[2] is None:
        raise ValueError(f"{name}: the number of channels must be known, got {input_shape!r}")
    return shape


def _check_num_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")


def _adapted(padding: str, hw: _HW, window: int, adapt: bool, where: str) -> str:
    """``padding``, or 'same' where a 'valid' window larger than the map would leave nothing (with ``adapt``;
    without it, a ValueError naming the layer)."""
    if padding == "valid" and any(s is not None and s < window for s in hw):
        if not adapt:
            raise ValueError(
                f"input too small for the original architecture: {where} sees a {hw} map; pass "
                f"adapt_to_small_inputs=True to use 'same' padding there"
            )
        return "same"
    return padding


def _conv_padding(hw: _HW, kernel: int, padding: str, adapt: bool, where: str) -> Tuple[str, _HW]:
    """Padding to use for a stride-1 ``kernel x kernel`` conv on a map of size ``hw``."""
    padding = _adapted(padding, hw, kernel, adapt, f"{where} ({kernel}x{kernel} 'valid' conv)")
    if padding == "same":
        return padding, hw
    return padding, tuple(None if s is None else s - kernel + 1 for s in hw)  # type: ignore[return-value]


def _pool_padding(hw: _HW, padding: str, adapt: bool, where: str, pool: int = 2) -> Tuple[str, _HW]:
    """Padding to use for a ``pool x pool`` / stride ``pool`` max-pool on a map of size ``hw``."""
    padding = _adapted(padding, hw, pool, adapt, f"{where} ({pool}x{pool} 'valid' max-pool)")
    if padding == "same":
        return padding, tuple(None if s is None else -(-s // pool) for s in hw)  # type: ignore[return-value]
    return padding, tuple(None if s is None else s // pool for s in hw)  # type: ignore[return-value]
