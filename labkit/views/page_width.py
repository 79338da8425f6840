"""How wide the page gives a widget: the browser measures, the kernel is told.

ipympl draws a figure at the size the kernel chose and clips what does not fit (its container
hides the overflow): a 1000 px explorer figure in a 900 px window, or in JupyterLab beside an
open file browser, loses the end of the call with no scroll bar. No ipywidgets widget reports
a width, so this one does: an invisible, full-width element whose browser side watches its own
width (a ResizeObserver) and sends it to ``width_px`` once it settles. The explorer fits its
figure to it (labkit/views/explorer_app.py; notebooks/03_explorer.ipynb).
"""

from __future__ import annotations

import anywidget
import ipywidgets as widgets
import traitlets

SETTLE_MS = 150  # a window being dragged wider sends one width when it stops, not one per step

# The browser side (anywidget's module format): the element's width (its layout: the full width,
# no height) is sent once it stayed SETTLE_MS, and at once when first shown.
_ESM = """
function render({ model, el }) {
  let timer = null;
  const send = () => {
    const width = Math.floor(el.getBoundingClientRect().width);
    if (width > 0 && width !== model.get("width_px")) {
      model.set("width_px", width);
      model.save_changes();
    }
  };
  const observer = new ResizeObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(send, %(settle)d);
  });
  observer.observe(el);
  send();
  return () => { observer.disconnect(); clearTimeout(timer); };
}
export default { render };
""" % {"settle": SETTLE_MS}  # noqa: UP031 (the JS is full of braces)


class PageWidth(anywidget.AnyWidget):
    """``width_px``: the width in CSS pixels the page gives this widget (0 until a browser
    shows it: a notebook run headless never sets it)."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
    width_px = traitlets.Int(0).tag(sync=True)

    def __init__(self) -> None:
        super().__init__(layout=widgets.Layout(width="100%", height="0px", margin="0"))
