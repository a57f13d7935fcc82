"""The official per-trial ``.npy`` trees: where they lie, how they are read, what they may hold.

- :mod:`~sensorium_data.filetree.sources`: a tree's files in a folder or a zip, local or remote.
- :mod:`~sensorium_data.filetree.npyio`: ``.npy`` headers and arrays, without pickles.
- :mod:`~sensorium_data.filetree.statistics`: which ``meta/statistics`` a tree may hold.
- :mod:`~sensorium_data.filetree.tree`: :class:`FileTree`, one mouse's tree, read trial by trial.

This layer imports nothing of the layers above it (:mod:`sensorium_data.store`,
:mod:`sensorium_data.loading`, ...).
"""

from .tree import FileTree, open_tree

__all__ = ["FileTree", "open_tree"]
