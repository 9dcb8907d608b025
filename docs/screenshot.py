"""Render the README screenshot: napari with the sample, the widget docked, and its result.

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/screenshot.py [--model default] [--out docs/widget.png]
"""

from __future__ import annotations

import argparse

import napari
from qtpy.QtWidgets import QApplication

from napari_jpeg_restore._widget import RestoreWidget


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default="docs/widget.png")
    args = ap.parse_args()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1300, 800)
    viewer.open_sample("napari-jpeg-restore", "jpeg_q10")
    widget = RestoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Remove JPEG artifacts (JPEG Restore)")
    widget.reset_choices()
    widget.controls["model"].value = args.model
    widget.run()
    while widget.worker is not None:
        QApplication.processEvents()
    if len(viewer.layers) > 1:
        viewer.layers[0].visible = False  # show the restored layer, the input listed below it
    viewer.screenshot(args.out, canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main()
