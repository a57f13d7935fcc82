"""SENSORIUM 2022/2023 data as labelled, chunked Zarr v3 stores.

Read the official per-trial ``.npy`` trees, convert them, open them lazily from disk, HTTP or
object storage as xarray, and stream them into torch. The package follows the data's path:
:mod:`~sensorium_data.filetree` (the official trees), :mod:`~sensorium_data.store` (the Zarr
stores), :mod:`~sensorium_data.loading` (batches for torch), :mod:`~sensorium_data.metrics`,
:mod:`~sensorium_data.submission` (files, scoring, leaderboards) and
:mod:`~sensorium_data.synthetic`; each imports only from the layers before it.
``import sensorium_data`` does not import torch.
"""


def _as_command() -> str:
    """``"script"`` in the ``sensorium-data`` console script, ``"module"`` under ``python -m``
    of this package, else ``""``."""
    import itertools
    import os
    import sys

    if os.path.basename(sys.argv[0] if sys.argv else "") == "sensorium-data":
        return "script"
    argv = getattr(sys, "orig_argv", sys.argv)
    if any(a == "-m" and b.startswith("sensorium_data") for a, b in itertools.pairwise(argv)):
        return "module"
    return ""


def _exit_if_command() -> None:
    """Ctrl-C while ``sensorium-data`` is still importing: the one line it prints later on.

    Importing this package (numpy, zarr, dask, xarray) is most of the command's start-up; a
    KeyboardInterrupt there would otherwise print a traceback of the import machinery. A
    program that merely imports the package gets its KeyboardInterrupt as usual.
    """
    if _as_command():
        import sys

        print("sensorium-data: interrupted", file=sys.stderr)
        raise SystemExit(130)


try:
    from . import metrics
    from ._version import __version__
    from .errors import (
        IncompleteStoreError,
        InvalidFileTreeError,
        MouseExistsError,
        MouseNotFoundError,
        RemoteReadError,
        SchemaError,
        SensoriumDataError,
        StoreNotFoundError,
        UnsafePickleError,
    )
    from .examples import example_store
    from .filetree.tree import FileTree, open_tree
    from .loading.normalize import Normalizer
    from .store.access import list_mice, open_mouse, open_statistics, open_store
    from .store.convert import convert
    from .store.export import export
    from .store.schema import ChunkOptions
    from .store.verify import verify
    from .submission import (
        check_submission,
        fix_submission,
        read_submission,
        validate_submission,
        write_ground_truth,
        write_submission_2022,
        write_submission_2023,
    )
    from .submission.scoring import ScoreReport, leaderboard, score_submission
    from .synthetic.generate import synthesize

    if _as_command() == "script":  # the script imports the CLI next: start-up too
        from . import cli  # noqa: F401
except KeyboardInterrupt:
    _exit_if_command()
    raise


def __getattr__(name: str) -> object:
    """The torch part of the API (:mod:`sensorium_data.loading`), imported on first use
    (``import sensorium_data`` stays light)."""
    from . import loading

    if name in loading.TORCH_API:
        return getattr(loading, name)
    raise AttributeError(f"module 'sensorium_data' has no attribute {name!r}")


__all__ = [
    "BlockShuffleSampler",
    "ChunkOptions",
    "FileTree",
    "IncompleteStoreError",
    "InvalidFileTreeError",
    "LongCycler",
    "MouseDataset",
    "MouseExistsError",
    "MouseNotFoundError",
    "Normalizer",
    "RemoteReadError",
    "SampleOptions",
    "SchemaError",
    "ScoreReport",
    "SensoriumDataError",
    "StoreNotFoundError",
    "UnsafePickleError",
    "__version__",
    "check_submission",
    "convert",
    "example_store",
    "export",
    "fix_submission",
    "leaderboard",
    "list_mice",
    "make_loaders",
    "metrics",
    "open_mouse",
    "open_statistics",
    "open_store",
    "open_tree",
    "read_submission",
    "score_submission",
    "synthesize",
    "validate_submission",
    "verify",
    "write_ground_truth",
    "write_submission_2022",
    "write_submission_2023",
]
