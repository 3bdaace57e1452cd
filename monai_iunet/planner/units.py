"""Memory sizes as people write them: ``8GiB``, ``"500 MB"``."""

from __future__ import annotations

import re

from monai_iunet.errors import UserInputError

__all__ = ["GiB", "MiB", "parse_bytes"]

MiB = 2**20
GiB = 2**30

_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_UNITS["tib"] = 2**40
_UNITS.update({"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40})


def parse_bytes(value: int | float | str) -> int:
    """``8GiB``, ``"8 GB"``, ``"500MiB"``, ``"8g"`` (binary) or a number of bytes → bytes.

    Raises:
        ValueError: for an unknown unit or a non-positive amount.
    """
    if isinstance(value, (int, float)):
        amount = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if unit not in _UNITS:
            raise UserInputError(f"cannot read a memory size from {value!r}; write e.g. '8GiB', '8 GB' or '500MiB'.")
        amount = float(match.group(1)) * _UNITS[unit]
    if amount <= 0:
        raise UserInputError(f"a memory budget must be positive, got {value!r}.")
    return int(amount)
