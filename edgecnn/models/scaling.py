"""Channel and depth scaling shared by every family.

One ``make_divisible`` (the rule of the TF-slim/keras MobileNets), wrapped as
``round_channels`` for width multipliers and ``round_repeats`` for EfficientNet-style
depth multipliers.
"""
import math


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below ``min_value``
    (default ``divisor``) and never more than 10 % below ``value``."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def round_channels(channels: float, alpha: float = 1.0, divisor: int | None = 8,
                   min_value: int | None = None) -> int:
    """Scale ``channels`` by the width multiplier ``alpha``.

    With ``divisor=None`` the product is truncated (MobileNet V1's rule, ``int(c * alpha)``);
    otherwise it is rounded by :func:`make_divisible`.
    """
    if divisor is None:
        return int(channels * alpha)
    return make_divisible(channels * alpha, divisor, min_value)


def round_repeats(repeats: int, depth_multiplier: float = 1.0) -> int:
    """Scale a stage's block count by a depth multiplier, rounding up (EfficientNet)."""
    return int(math.ceil(depth_multiplier * repeats))
