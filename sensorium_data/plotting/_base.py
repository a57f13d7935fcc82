"""What the figures of :mod:`sensorium_data.plotting` share: the matplotlib import, a new figure.

Figures are :class:`matplotlib.figure.Figure` objects made without ``pyplot``: no global state, no
window, nothing kept alive after the caller drops the figure. Jupyter shows a figure that ends a
cell; ``fig.savefig("name.png")`` writes it anywhere.
"""

from __future__ import annotations

from typing import Any

__all__ = ["INSTALL_HINT", "new_figure", "require_matplotlib", "show_in_ipython"]

INSTALL_HINT = (
    "sensorium_data.plotting needs matplotlib: pip install matplotlib "
    '(or pip install -e ".[notebooks]" for the notebooks and everything they use)'
)


def require_matplotlib() -> Any:
    """The ``matplotlib`` module, or an ImportError that says what to install."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
        raise ImportError(INSTALL_HINT) from exc
    return matplotlib


def show_in_ipython() -> None:
    """In an IPython kernel, show a :class:`~matplotlib.figure.Figure` that ends a cell as PNG.

    ``pyplot`` figures get this from ``%matplotlib inline``; figures made without ``pyplot`` need
    the formatter registered. Outside IPython, or when it is registered already, nothing happens.
    """
    import sys

    if "IPython" not in sys.modules:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    if Figure in png.type_printers:
        return
    from IPython.core.pylabtools import print_figure

    png.for_type(Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight", base64=False))


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    width: float = 6.4,
    height: float = 4.0,
    **subplot_kw: Any,
) -> tuple[Any, Any]:
    """A constrained-layout figure of ``nrows x ncols`` axes (``squeeze=False``: always 2-D).

    ``width`` and ``height`` are inches; fonts stay at matplotlib's readable defaults.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    show_in_ipython()
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, subplot_kw=subplot_kw or None)
    return fig, axes
