"""In-silico biology of a trained model against the synthetic ground truth (issue 14, item 4).

``python -m benchmarks.insilico`` checks this on 4000 trials x 512 neurons with a 16-channel core
(targets: centres within 2 px for 80% of the well-predicted neurons, orientations within 15
degrees for 70%). Here the same pipeline runs on a small model in seconds, with looser bounds:
a stimulus-only synthetic mouse with little noise (``fano=0.1``, so that few trials suffice)
and 36 x 64 images (the model's size: the encoder's grid is the model's input), ``sensorium-sota``
with an 8-channel core trained for 20 short epochs, and the neurons whose test correlation is at
least 0.3. (Measured here: about 35 s; 80% of the neurons well predicted, centres within 3 px
for 90%, orientations within 22.5 degrees for 90%.) It also stands for the check that the CNN
learns a stimulus-only mouse at all.
"""

from __future__ import annotations

import numpy as np
import pytest

import sensorium_data as sd
from sensorium_models import insilico
from sensorium_models.evaluation import predict
from sensorium_models.training import TrainConfig, train

pytestmark = pytest.mark.slow  # both cores train the model (no one_thread fixture)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("insilico-trained")
    store = sd.example_store(
        root,
        kind="static",
        n_mice=1,
        n_trials=900,
        n_neurons=24,
        image_size=(36, 64),
        seed=2,
        competition=False,
        behavior_gain=0.0,
        shift_scale=0.0,
        fano=0.1,
    )
    result = train(
        store,
        "sensorium-sota",
        root / "run",
        config=TrainConfig(max_epochs=20, batch_size=16, device="cpu", seed=0, patience=20),
        overrides={"hidden_channels": 8},
        progress=False,
    )
    (mouse,) = sd.list_mice(store)
    source = sd.list_mice(store)[mouse]["source_name"]
    truth = dict(np.load(store.parent / "trees" / f"{source}.ground_truth.npz"))
    ds = sd.open_mouse(store, mouse)
    test = np.flatnonzero(ds.tiers.values == "test")
    correlation = sd.metrics.single_trial_correlation(
        ds.responses.values[test], predict(result.model, store, "test", mouse), per_neuron=True
    )
    good = np.flatnonzero(np.asarray(correlation) >= 0.3)
    space = insilico.InputSpace.from_store(result.model, store, mouse)
    return result.model.eval(), mouse, space, truth, good, store


def test_the_cnn_learns_the_mouse(trained) -> None:
    """A share of the noise ceiling (the ground-truth rates' single-trial correlation with the
    responses) on the repeated test images, and enough neurons to analyse. A broken core,
    readout, loss or loader would stay near 0."""
    model, mouse, _, truth, good, store = trained
    ds = sd.open_mouse(store, mouse, chunks=None)
    test = np.flatnonzero(ds.tiers.values == "test")
    responses = ds.responses.values[test]
    ceiling = sd.metrics.single_trial_correlation(responses, truth["rates"][test])
    score = sd.metrics.single_trial_correlation(responses, predict(model, store, "test", mouse))
    assert score > 0.5 * ceiling, (score, ceiling)
    assert len(good) >= 0.5 * len(truth["rf_center"])


def test_receptive_field_centres(trained) -> None:
    model, mouse, space, truth, good, _ = trained
    fields = insilico.gradient_receptive_fields(model, mouse, space, good)
    centers, _ = insilico.receptive_field_centers(fields)
    error = np.linalg.norm(centers - truth["rf_center"][good], axis=1)
    assert np.mean(error <= 3.0) >= 0.6, np.round(error, 2)


def test_preferred_orientations(trained) -> None:
    model, mouse, space, truth, good, _ = trained
    tuning = insilico.grating_tuning(model, mouse, space, good)
    found = np.degrees(tuning["preferred_orientation"].values)
    true = np.degrees(truth["rf_orientation"][good])
    off = np.abs((found - true + 90) % 180 - 90)
    assert np.mean(off <= 22.5) >= 0.6, np.round(off, 1)


def test_meis_beat_the_natural_images(trained) -> None:
    model, mouse, space, _, good, store = trained
    natural = insilico.natural_stimuli(model, store, mouse, space, limit=300)
    meis = insilico.most_exciting_inputs(
        model, mouse, space, good[:4], seeds=(0,), steps=60, natural=natural
    )
    assert meis.ratio is not None and np.mean(meis.ratio > 1.0) >= 0.75, meis.ratio
