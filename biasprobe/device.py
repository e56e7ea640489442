"""Choosing the torch device: one rule for the masked-LM runner, CrowS and sentiment training.

``auto`` picks CUDA when a GPU is visible, else Apple's MPS when available, else the CPU. torch
is imported only when a device is resolved, so importing this module is free.
"""

from __future__ import annotations

import re
from typing import Any

from biasprobe.errors import DeviceError

_EXPECTED = "expected auto, cpu, cuda, cuda:N or mps"


_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str | None) -> None:
    """Check the spelling of a device name without importing torch (for recorded outputs,
    which run on no device).

    Raises:
        DeviceError: the name is not auto, cpu, cuda, cuda:N or mps.
    """
    if name is not None and not _NAME.match(name):
        raise DeviceError(f"unknown device {name!r}; {_EXPECTED}")


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | None) -> Any:
    """Turn ``None``/``"auto"``/``"cpu"``/``"cuda"``/``"cuda:N"``/``"mps"`` into a torch device.

    Raises:
        DeviceError: the name is unknown or the device is not available on this machine.
    """
    import torch

    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {name!r}; {_EXPECTED}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA"
                if torch.version.cuda is None
                else "no GPU is visible"
            )
            raise DeviceError(
                f"--device {name} was requested but CUDA is not available ({why}); "
                "use --device cpu or --device auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
    elif dev.type == "mps":
        if not _mps_available(torch):
            raise DeviceError(f"--device {name} was requested but MPS is not available; use cpu")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}; {_EXPECTED}")
    return dev
