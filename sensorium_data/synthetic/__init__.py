"""Synthetic SENSORIUM trees with known ground truth, in the official layouts.

- :mod:`~sensorium_data.synthetic.generate`: :func:`synthesize`, trees of both years.
- :mod:`~sensorium_data.synthetic.encoder`: the ground-truth encoder behind the responses.
- :mod:`~sensorium_data.synthetic.files`: writing the trees' files.

It imports only the package's core modules.
"""

from .generate import synthesize

__all__ = ["synthesize"]
