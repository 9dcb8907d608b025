"""Device, precision and memory layout: decided here alone, for inference and training alike.

Training differs from inference in two measured ways, each an explicit ``training`` parameter:
"auto" precision trains in bfloat16 on a GPU too, and on CPUs without AVX-512 it trains with
contiguous tensors (channels-last makes a float32 backward pass 7 % slower there).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import RestoreError

#: Precisions a network runs in; "auto" is resolved by :func:`run_precision`.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


class DeviceError(RestoreError):
    """A device this machine lacks or torch does not know; the message names it."""


def pick_device(device=None):
    """``device`` as given (checked to exist), else cuda, then mps, then cpu."""
    import torch

    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise DeviceError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
        if (dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count())) \
                or (dev.type == "mps" and not torch.backends.mps.is_available()):
            raise DeviceError(f"device {device!r} is not available on this machine")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    """The devices this machine has, as a user names them: cpu, then cuda (and cuda:N), then mps."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found += ["cuda"] + ([f"cuda:{i}" for i in range(count)] if count > 1 else [])
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def cpu_has_native_bfloat16() -> bool:
    import torch

    # torch offers no public test; these private ones may go, and then float32 is the safe answer
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


def run_precision(precision: str, device, *, training: bool = False) -> str:
    """The precision that runs for an option value on ``device`` ("auto" resolved): bfloat16
    autocast on a CPU with native bfloat16 (and, for training, on a GPU), float32 elsewhere."""
    if precision != "auto":
        return precision
    if training and device.type == "cuda":
        return "bfloat16"
    return "bfloat16" if device.type == "cpu" and cpu_has_native_bfloat16() else "float32"


def memory_format(device, *, training: bool = False):
    """The tensor layout networks run in on ``device``: channels-last on the CPU (oneDNN's
    convolutions run about 1.2× faster), except when training on CPUs without AVX-512."""
    import torch

    if device.type != "cpu":
        return torch.contiguous_format
    if training and not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return torch.contiguous_format
    return torch.channels_last


def _process_thread_count() -> int:
    """torch's CPU thread count for the process. A thread's own view is fixed when torch first runs
    in it, so a thread that started while another held a count sees that count; a new thread sees
    the count now set."""
    import torch

    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    reader.start()
    reader.join()
    return seen[0]


class _ThreadCount:
    """torch's CPU thread count is one setting for the whole process: blocks that ask for a count
    share it while they ask for the same one and otherwise take turns; the count from before the
    first comes back after the last."""

    def __init__(self) -> None:
        self._turn = threading.Condition()
        self._holders = 0
        self._value: int | None = None
        self._before = 0

    @contextmanager
    def at(self, threads: int | None) -> Iterator[None]:
        if not threads:
            yield
            return
        import torch

        with self._turn:
            self._turn.wait_for(lambda: self._holders == 0 or self._value == threads)
            if self._holders == 0:
                self._before, self._value = _process_thread_count(), threads
                torch.set_num_threads(threads)
            self._holders += 1
        try:
            yield
        finally:
            with self._turn:
                self._holders -= 1
                if self._holders == 0:
                    torch.set_num_threads(self._before)
                    self._value = None
                    self._turn.notify_all()


#: ``with cpu_threads(n):`` runs a block with torch at ``n`` CPU threads (None or 0: as it is).
#: Hold it only around computing, never across a ``yield``: a paused holder would keep others waiting.
cpu_threads = _ThreadCount().at
