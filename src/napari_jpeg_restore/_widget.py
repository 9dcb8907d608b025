"""The napari dock widget "Remove JPEG artifacts": thin; the work is layer_data's generator,
run in a napari thread worker with a progress bar and a Stop button."""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)
from magicgui.widgets.bases import ValueWidget
from napari.qt.threading import create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QDockWidget
from superqt import QCollapsible

from .errors import RestoreError
from .layer_data import (
    LayerResult,
    frame_metadata,
    frame_shape,
    layer_tables,
    preview_box,
    restore_layer_data,
    restore_lazily,
    save_restored_frames,
)
from .options import DEFAULTS, RestoreOptions

FROM_FILE, FROM_QUALITY = "file tables, else estimated", "quality factor below"


def option_control(f) -> ValueWidget:
    """The control for one :class:`RestoreOptions` field, built from its metadata (the source the
    command line's options come from too): label, help, default, range or choices."""
    meta = f.metadata
    shown = meta["none"] if f.default is None else f.default
    common = {"name": f.name, "tooltip": meta["help"]}
    if meta["choices"] is not None or isinstance(meta["kind"], tuple):
        choices = list(meta["kind"]) if isinstance(meta["kind"], tuple) else [meta["none"], *meta["choices"]()]
        return ComboBox(choices=choices, value=shown, **common)
    if meta["span"] is not None:
        low, high, step = meta["span"]
        spin = (FloatSpinBox if meta["kind"] is float else SpinBox)(min=low, max=high, step=step, value=shown, **common)
        if meta["none"] == low:  # the value that stands for the default reads as what it means
            spin.native.setSpecialValueText("auto")
        return spin
    return LineEdit(value=str(shown), **common)


class RestoreWidget(Container):
    def __init__(self, napari_viewer):
        super().__init__()
        self._viewer = napari_viewer
        self._image = create_widget(annotation="napari.layers.Image", label="image")
        self._tables = ComboBox(label="tables", choices=[FROM_FILE, FROM_QUALITY], value=FROM_FILE)
        self._quality = SpinBox(label="quality", min=1, max=100, value=10, enabled=False)
        #: one control per restore option, by field name
        self.controls = {f.name: option_control(f) for f in fields(RestoreOptions)}
        advanced = [name for name, f in ((f.name, f) for f in fields(RestoreOptions)) if f.metadata["advanced"]]
        self._advanced = Container(widgets=[self.controls[n] for n in advanced])
        self._preview = PushButton(text="Preview", tooltip="Restore only the part in view (at most ~1 MP), into "
                                   "a temporary layer: try the settings before the whole image.")
        self._run = PushButton(text="Run")
        self._save_to = FileEdit(mode="d", label="save to", tooltip="A folder for the restored frames (lossless PNG).")
        self._save = PushButton(text="Restore and save", tooltip="Restore the layer (every frame of a stack) and write "
                                "each frame to the folder above as it is done: a stack of any length in bounded memory; "
                                "Stop keeps the frames written.")
        self._stop = PushButton(text="Stop", enabled=False)
        self._status = Label(value="")
        self._status.native.setWordWrap(True)  # an error's whole message, however long
        # tiles done of all, in the widget itself (napari's activity panel is collapsed by default)
        self._progress = ProgressBar(value=0, min=0, max=1, label="progress", visible=False)
        self.extend([self._image, self._tables, self._quality,
                     *(c for n, c in self.controls.items() if n not in advanced)])
        self.extend([self._preview, self._run, self._save_to, self._save, self._stop, self._progress, self._status])
        self.advanced_section = QCollapsible("Advanced")  # collapsed until opened
        self.advanced_section.addWidget(self._advanced.native)
        row = self._preview.native  # the section goes above the buttons: find the Preview row
        while row.parentWidget() is not self.native:
            row = row.parentWidget()
        self.native.layout().insertWidget(self.native.layout().indexOf(row), self.advanced_section)
        self._tables.changed.connect(lambda v: setattr(self._quality, "enabled", v == FROM_QUALITY))
        self._preview.clicked.connect(self.preview)
        self._run.clicked.connect(self.run)
        self._save.clicked.connect(self.save)
        self._stop.clicked.connect(self.stop)
        # napari builds the dock's title bar after taking the widget: measure it once events run
        self.native_parent_changed.connect(lambda *_: QTimer.singleShot(0, self._fit_dock_title))
        self.worker = None
        self._bar = None
        self._tables_used, self._what, self._started, self._failed, self._unit = "", "", 0.0, False, "tiles"

    def _fit_dock_title(self) -> None:
        """Docked, be at least as wide as the dock's title bar needs, so the title is not cut off."""
        parent = self.native.parentWidget()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        bar = parent.titleBarWidget() if parent is not None else None
        layout = bar.layout() if bar is not None else None
        if layout is not None:  # napari's bar: buttons, a line and the title
            need = layout.sizeHint().width() + 2 * layout.spacing()  # the line between takes some too
            self.native.setMinimumWidth(max(self.native.minimumWidth(), need))

    def run(self):
        """Restore the whole layer into a new layer (replacing any preview)."""
        layer, options = self._layer_and_options()
        if layer is None:
            return
        if not isinstance(layer.data, np.ndarray) and layer.data.ndim > (3 if layer.rgb else 2):
            self._restore_lazily(layer, options)
            return
        self._start(layer, layer.data, options, None, lambda data: self._add_result(layer, data),
                    f"Restoring {layer.name}")

    def save(self):
        """Restore each frame of the layer and write it to the chosen folder, frame by frame."""
        layer, options = self._layer_and_options()
        if layer is None:
            return
        folder = self._save_to.value
        if not str(folder) or str(folder) == ".":
            self._fail("choose a folder to save to")
            return
        self._start(layer, layer.data, options, None, lambda paths: self._saved(paths, folder),
                    f"Saving {layer.name}", job=save_restored_frames, unit="frames", folder=folder)

    def _saved(self, paths, folder) -> None:
        show_info(f"Remove JPEG artifacts: {len(paths)} restored frames written to {folder}")

    def _restore_lazily(self, layer, options) -> None:
        """A lazy stack (a folder of frames) gives a lazy result: napari restores a frame when it
        shows it, so a stack of any length takes no time nor memory up front."""
        where = self._where(layer, layer.metadata)
        try:
            self._tables_used = layer_tables(layer.data, **where).origin
            lazy = restore_lazily(layer.data, **where, options=options)
        except RestoreError as exc:
            self._fail(exc)
            return
        self._add_result(layer, lazy)
        self._status.value = f"{layer.name} restored lazily: each frame when it is shown (tables: {self._tables_used})"

    def _where(self, layer, metadata) -> dict:
        """What the core needs to find a layer's tables (see layer_data.frame_tables)."""
        return {"rgb": layer.rgb, "metadata": dict(metadata),
                "source_path": getattr(getattr(layer, "source", None), "path", None),
                "quality": self._quality.value if self._tables.value == FROM_QUALITY else None}

    def preview(self):
        """Restore the part of the layer in view (the current frame of a stack) into a temporary layer."""
        layer, options = self._layer_and_options()
        if layer is None:
            return
        data, metadata = layer.data, layer.metadata
        if data.ndim > (3 if layer.rgb else 2):  # a stack: the frame on screen, with its own facts
            step = min(max(int(round(layer.world_to_data(self._viewer.dims.point)[0])), 0), data.shape[0] - 1)
            data, metadata = data[step], frame_metadata(metadata, step)
        box = preview_box(frame_shape(data, layer.rgb), layer.corner_pixels[:, -2:])
        # tiles are what keep a preview small: a whole-image setting previews with the default tile
        options = options.replace(tile=options.tile or DEFAULTS.tile)
        self._start(layer, data, options, box, lambda out: self._show_preview(layer, out, box),
                    f"Previewing {layer.name}", metadata)

    def _layer_and_options(self):
        layer = self._image.value
        if layer is None:
            self._fail("choose an image layer first")
            return None, None
        try:
            return layer, self.restore_options()
        except RestoreError as exc:
            self._fail(exc)
            return None, None

    def _fail(self, problem) -> None:
        """A notification, and the whole message in the widget (a notification may cut it short)."""
        self._failed = True
        self._status.value = f"Remove JPEG artifacts: {problem}"
        show_error(self._status.value)

    def _start(self, layer, data, options, region, on_result, what, metadata=None, *, job=restore_layer_data,
               unit="tiles", **job_args):
        """Run ``job`` (a core generator yielding (done, total) ``unit``) in a thread worker."""
        where = self._where(layer, layer.metadata if metadata is None else metadata)
        try:
            self._tables_used = layer_tables(data, **where).origin  # shown while and after it runs
        except RestoreError as exc:  # e.g. the layer's file is a CMYK JPEG
            self._fail(exc)
            return
        if region is not None:
            job_args["region"] = region
        self.worker = create_worker(job, data, **where, **job_args, options=options,
                                    _ignore_errors=True)  # errors become notifications (errored, below)
        self._bar = progress(total=0, desc=what)
        self._progress.value, self._progress.max, self._progress.visible = 0, 1, True
        self._started, self._what, self._unit = time.monotonic(), what, unit
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda result: self._on_returned(result, on_result))
        self.worker.errored.connect(self._fail)
        self.worker.aborted.connect(lambda: show_info(f"Remove JPEG artifacts: stopped, {layer.name} unchanged"))
        self.worker.finished.connect(self._on_finished)
        self._run.enabled, self._preview.enabled, self._save.enabled, self._stop.enabled = False, False, False, True
        self._failed = False
        self._status.value = f"{what[0].lower()}{what[1:]}… (tables: {self._tables_used})"
        self.worker.start()

    def restore_options(self) -> RestoreOptions:
        """The options as set in the widget (validated: a bad one raises RestoreError)."""
        values: dict[str, Any] = {}
        for f in fields(RestoreOptions):
            value = self.controls[f.name].value
            value = value.strip() if isinstance(value, str) else value
            values[f.name] = None if value == f.metadata["none"] else value
        return RestoreOptions(**values).checked()

    def stop(self):
        if self.worker is not None:
            self.worker.quit()

    def _on_progress(self, value):
        done, total = value
        if self.worker is None or done >= total:  # the end is _on_finished's (it may come first)
            return
        self._bar.total = total
        self._bar.update(done - self._bar.n)
        self._progress.max, self._progress.value = total, done
        left = ""
        if 0 < done < total:  # the work so far says how long the rest takes
            left = f", about {(time.monotonic() - self._started) * (total - done) / done:.0f} s left"
        self._status.value = f"{self._what}: {done} of {total} {self._unit}{left} (tables: {self._tables_used})"

    def _add_result(self, layer, data):
        preview = f"{layer.name} preview"
        if preview in self._viewer.layers:
            self._viewer.layers.remove(preview)
        self._viewer.add_image(data, name=f"{layer.name} restored", rgb=layer.rgb, scale=layer.scale,
                               translate=layer.translate,
                               metadata={"restored_from": layer.name, "tables": self._tables_used})

    def _show_preview(self, layer, frame, box):
        y0, y1, x0, x1 = box
        scale = np.asarray(layer.scale[-2:])
        translate = np.asarray(layer.translate[-2:]) + np.array([y0, x0]) * scale
        crop, name = frame[y0:y1, x0:x1], f"{layer.name} preview"
        meta = {"preview_of": layer.name, "region": [int(v) for v in box]}
        if name in self._viewer.layers:
            shown = self._viewer.layers[name]
            shown.data, shown.translate, shown.metadata = crop, translate, meta
        else:
            self._viewer.add_image(crop, name=name, rgb=layer.rgb, scale=scale, translate=translate, metadata=meta)

    def _on_finished(self):
        if self._bar is not None:
            self._bar.close()
        self._progress.value = self._progress.max  # done (or stopped: the bar goes either way)
        self._progress.visible = False
        self._run.enabled, self._preview.enabled, self._save.enabled, self._stop.enabled = True, True, True, False
        if not self._failed:
            self._status.value = f"tables: {self._tables_used}"
        self.worker = None

    def _on_returned(self, result, on_result) -> None:
        if isinstance(result, LayerResult):
            self._tables_used = result.tables  # with the quality found, where the frames' were estimated
            result = result.data
        on_result(result)
