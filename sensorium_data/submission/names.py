"""The official submission and ground-truth file names, the tiers they cover, what they hold."""

from __future__ import annotations

import dataclasses

from .problems import SubmissionError

DEFAULT_SKIP = 50  # first frames of every 2023 trial that are not scored
STATIC_TIERS = ("test", "final_test")
DYNAMIC_TIERS = ("live_test_main", "final_test_main", "live_test_bonus", "final_test_bonus")
MAIN_ZIP = "predictions_main.zip"


# ----------------------------------------------------------------------------- file names


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """What an official file name stands for.

    Attributes
    ----------
    year
        2022 (CSV, one mouse) or 2023 (parquet, every mouse).
    tier
        The store tier it covers (``test``, ``final_test``, ``live_test_main``, ...).
    ground_truth
        A ground-truth (``responses``) file rather than a submission (``prediction``).
    """

    year: int
    tier: str
    ground_truth: bool = False

    @property
    def value_columns(self) -> tuple[str, ...]:
        """Accepted names of the column holding the values."""
        if not self.ground_truth:
            return ("prediction",)
        return ("responses", "prediction") if self.year == 2023 else ("responses",)

    @property
    def track(self) -> str | None:
        """2023 track (``main`` or ``bonus``)."""
        return None if self.year == 2022 else self.tier.rsplit("_", 1)[-1]


_STEMS = {
    "live_test_main": "live_main",
    "final_test_main": "final_main",
    "live_test_bonus": "live_test_bonus_ood",
    "final_test_bonus": "final_test_bonus_ood",
}

#: Every official file name and what it holds.
FILE_SPECS: dict[str, FileSpec] = {
    "submission_file_live_test.csv": FileSpec(2022, "test"),
    "submission_file_final_test.csv": FileSpec(2022, "final_test"),
    "ground_truth_file_test.csv": FileSpec(2022, "test", True),
    "ground_truth_file_final_test.csv": FileSpec(2022, "final_test", True),
    **{f"predictions_{s}.parquet.brotli": FileSpec(2023, t) for t, s in _STEMS.items()},
    **{f"solutions_{s}.parquet.brotli": FileSpec(2023, t, True) for t, s in _STEMS.items()},
}


#: The names the 2023 kit's own ``generate_submission`` writes
#: (``predictions_file_{tier}_{track}_track.parquet.brotli``, track ``main`` or ``ood``) -> the
#: official names the scorer and the kit's README ask for. Read and scored as those; rename them
#: before uploading (:func:`~sensorium_data.submission.fix_submission`).
KIT_FILE_NAMES: dict[str, str] = {
    f"predictions_file_{tier}_{'main' if tier.endswith('main') else 'ood'}_track.parquet.brotli": (
        f"predictions_{stem}.parquet.brotli"
    )
    for tier, stem in _STEMS.items()
}


def spec_of(name: str) -> FileSpec | None:
    """What a file name stands for: an official name, or the kit's name of an official file."""
    return FILE_SPECS.get(KIT_FILE_NAMES.get(name, name))


def official_name(name: str) -> str:
    """The official name of a file (the kit's names mapped, others unchanged)."""
    return KIT_FILE_NAMES.get(name, name)


def file_name(tier: str, *, ground_truth: bool = False) -> str:
    """The official file name of ``tier`` (``test`` -> ``submission_file_live_test.csv``)."""
    for name, spec in FILE_SPECS.items():
        if spec.tier == tier and spec.ground_truth == ground_truth:
            return name
    tiers = ", ".join(STATIC_TIERS + DYNAMIC_TIERS)
    raise SubmissionError(f"no submission file for tier {tier!r}; tiers with files: {tiers}")
