"""In-silico experiments on any encoder of :mod:`sensorium_models` (trained here or a kit's).

One function per experiment, each batched over neurons and run where the model's parameters
are (a GPU when the model is on one):

- :func:`load_stimuli` and :func:`natural_responses`: predicted responses to any pictures or
  clips (arrays, PIL images, a folder), normalised as the model expects (:class:`InputSpace`);
- :func:`most_exciting_inputs`: MEIs by gradient ascent with Gaussian-blur preconditioning and
  jitter under a fixed contrast, several seeds, against the best natural stimulus;
- :func:`gradient_receptive_fields` and :func:`receptive_field_centers`: the model's
  linearisation around the mean stimulus, and each field's centre and size;
- :func:`grating_tuning` (orientation, spatial period, phase) and, for video models,
  :func:`drifting_grating_tuning` (direction, temporal frequency).

::

    from sensorium_models import insilico
    space = insilico.InputSpace.from_store(model, "sensorium.zarr", mouse)
    rfs = insilico.gradient_receptive_fields(model, mouse, space, neurons=range(20))
    centres, sizes = insilico.receptive_field_centers(rfs)
"""

from sensorium_models.insilico.inputs import InputSpace, load_stimuli, model_responses
from sensorium_models.insilico.mei import (
    MEIResult,
    most_exciting_inputs,
    natural_responses,
    natural_stimuli,
)
from sensorium_models.insilico.rf import gradient_receptive_fields, receptive_field_centers
from sensorium_models.insilico.tuning import (
    drifting_grating_tuning,
    grating_tuning,
    gratings,
    preferred,
)

__all__ = [
    "InputSpace",
    "MEIResult",
    "drifting_grating_tuning",
    "gradient_receptive_fields",
    "grating_tuning",
    "gratings",
    "load_stimuli",
    "model_responses",
    "most_exciting_inputs",
    "natural_responses",
    "natural_stimuli",
    "preferred",
    "receptive_field_centers",
]
