"""The restoration options every face offers, with their defaults written once.

:class:`RestoreOptions` is a value: its fields are checked against each other when it is made (a
negative strength, a tile no larger than twice the overlap asked for). What needs the machine or the
disk (a device it lacks, a model that does not exist, a tile too small for the model's own overlap)
is :meth:`RestoreOptions.checked`, which every face calls once, before any work, never once per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from .device import PRECISIONS, available_devices, pick_device
from .errors import RestoreError
from .jpeg import GRID
from .weights import read_config, recorded_overlap, resolve

#: The tile overlap for a model whose record names none: what every model was tiled with before
#: overlaps were chosen per model (enough for the flat bodies: tiled equals whole within a level).
FALLBACK_OVERLAP = 32


class OptionError(RestoreError):
    """An option value that cannot work; the message names the option."""


def _help(text: str, kind=str, *, none=None, choices=None, span=None, advanced: bool = False) -> dict:
    """Field metadata, what every face builds its control from: the help text; the value type a
    text face converts to (a tuple: the choices); ``none``: how a face spells the default None
    ("default", "auto", 0); ``choices``: a function giving the values this machine offers;
    ``span``: (min, max, step) of a number; ``advanced``: a setting most users leave alone."""
    return {"help": text, "kind": kind, "none": none, "choices": choices, "span": span, "advanced": advanced}


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore. Faces pass these through unchanged; see each field's help."""

    model: str | None = field(default=None, metadata=_help(
        "Model: 'default' (the shipped one for the image's kind), a shipped name or a folder made by "
        "`qgcn-train export`.", none="default"))
    device: str | None = field(default=None, metadata=_help(
        "cpu, cuda, cuda:N or mps (auto: the best available).", none="auto", choices=available_devices))
    tile: int = field(default=512, metadata=_help(
        f"Window side in pixels: 0 (the whole image at once) or a multiple of {GRID} larger than twice the overlap.",
        int, span=(0, 8192, GRID), advanced=True))
    overlap: int | None = field(default=None, metadata=_help(
        f"Context pixels added on each side of a tile, a multiple of {GRID} (0 or auto: the model's own, from its "
        f"record; {FALLBACK_OVERLAP} for a model whose record names none).", int, none=0, span=(0, 512, GRID),
        advanced=True))
    threads: int | None = field(default=None, metadata=_help(
        "CPU threads for torch (0 or auto: torch's default).", int, none=0, span=(0, 256, 1), advanced=True))
    precision: str = field(default="auto", metadata=_help(
        "auto: bfloat16 autocast on CPUs with native bfloat16 (AVX512-BF16 or AMX; about twice as fast, PSNR "
        "within 0.01 dB), float32 elsewhere; or float32, bfloat16, float16 (autocast; float16 for GPUs).",
        PRECISIONS, advanced=True))
    strength: float = field(default=1.0, metadata=_help(
        "Scales the quantization maps the network sees: > 1 removes more (as if compressed harder), < 1 less.",
        float, span=(0.25, 4.0, 0.05)))
    consistency: str | float = field(default="auto", metadata=_help(
        "Hold the output to the file's quantization intervals: each block's DCT coefficient within "
        "(k ± α)·q of the coded one. auto: the model's own α (its record); a number: that α (0.5: the exact "
        "set; smaller: nearer the coded values); off: no projection.", str))

    def __post_init__(self):
        for f in fields(self):  # how faces spell the default ("default", "auto", 0): stored as None
            if f.metadata["none"] is not None and getattr(self, f.name) in ("", f.metadata["none"]):
                object.__setattr__(self, f.name, None)
        for name in ("tile", "overlap"):  # one rule, for every face: a value off the grid is refused
            value = getattr(self, name)
            if value is not None and (value < 0 or value % GRID):
                below = max(value // GRID * GRID, 0)
                raise OptionError(f"{name} must be 0 or a multiple of {GRID} pixels, got {value} "
                                  f"(try {below} or {below + GRID})")
        if self.overlap is not None:
            self.tile_overlap(None)
        if self.threads is not None and self.threads < 1:
            raise OptionError(f"threads must be at least 1, got {self.threads}")
        if self.precision not in PRECISIONS:
            raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.strength > 0:
            raise OptionError(f"strength must be positive, got {self.strength}")
        object.__setattr__(self, "consistency", _consistency(self.consistency))

    def checked(self) -> "RestoreOptions":
        """These options, once this machine has the device and the model exists (else a
        ValueError naming the option)."""
        if self.device is not None:
            pick_device(self.device)
        folders = {resolve(self.model, colour) for colour in (True, False)}  # a named model: one folder
        if self.overlap is None and self.tile:  # a given overlap was checked against the tile when made
            for folder in folders:
                self.tile_overlap(recorded_overlap(read_config(folder)["record"], folder))
        return self

    def alpha(self, model_alpha: float) -> float | None:
        """The interval half-width to project with (None: no projection), given the model's own."""
        if self.consistency == "off":
            return None
        return model_alpha if self.consistency == "auto" else float(self.consistency)

    def tile_overlap(self, model_overlap: int | None) -> int:
        """The overlap to tile with, given the model's own (its record's; None: none named)."""
        overlap = self.overlap if self.overlap is not None else \
            FALLBACK_OVERLAP if model_overlap is None else model_overlap
        if self.tile and self.tile <= 2 * overlap:
            whose = "" if self.overlap is not None else ", the model's own"
            raise OptionError(f"tile ({self.tile}) must be 0 or larger than twice the overlap ({overlap}{whose})")
        return overlap

    def replace(self, **changes) -> "RestoreOptions":
        return replace(self, **changes)


def _consistency(value) -> str | float:
    """"auto", "off" or a half-width α in (0, 1], from a face's value (text or number)."""
    if value in ("auto", "off"):
        return value
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"consistency must be auto, off or a number in (0, 1], got {value!r}") from None
    if not 0 < alpha <= 1:
        raise OptionError(f"consistency α must be in (0, 1] (0.5 is the exact constraint set), got {value!r}")
    return alpha


DEFAULTS = RestoreOptions()


def click_options(skip: tuple[str, ...] = ()):
    """A decorator adding one ``--name`` per option but those in ``skip`` to a click command
    (same help, same default); the command gets them as keyword arguments."""
    import click

    def decorate(command):
        for f in reversed(fields(RestoreOptions)):
            if f.name in skip:
                continue
            kind = f.metadata["kind"]
            command = click.option(f"--{f.name}", type=click.Choice(kind) if isinstance(kind, tuple) else kind,
                                   default=f.default, show_default=f.default is not None,
                                   help=f.metadata["help"])(command)
        return command

    return decorate
