"""``sensorium-data info``: what a store holds, as text a person reads."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import zarr

from ..remote import is_remote_failure
from .access import open_root, read_mice
from .schema import ATTRS_KEY

__all__ = ["describe_store", "format_bytes"]

TIER_ORDER = (
    "train",
    "validation",
    "oracle",
    "test",
    "final_test",
    "live_test_main",
    "live_test_bonus",
    "final_test_main",
    "final_test_bonus",
    "none",
)


def format_bytes(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _store_bytes(group: zarr.Group) -> int | None:
    """The bytes of a group, or ``None`` where the store cannot list (a web server without
    directory listing answers 403, an S3 bucket without list permission AccessDenied)."""
    try:
        return int(zarr.core.sync.sync(group.store.getsize_prefix(group.path)))
    except (NotImplementedError, OSError, ValueError):
        return None
    except Exception as exc:
        if is_remote_failure(exc):  # aiohttp's 403/405 on a directory
            return None
        raise


def _shape(t: tuple[int, ...] | None) -> str:
    return "-" if t is None else "(" + ", ".join(map(str, t)) + ")"


def describe_store(url: Any, storage_options: dict[str, Any] | None = None) -> str:
    """A summary of every mouse: kind, tiers, neurons, variables with chunking, sizes."""
    root, _ = open_root(url, storage_options)
    mice = read_mice(root, url)
    root_meta = dict(root.attrs)[ATTRS_KEY]
    lines = [
        f"store {url}: {len(mice)} mice, format {root_meta.get('format_version')}, "
        f"written by sensorium-data {root_meta.get('toolkit_version')}"
    ]
    for name, meta in mice.items():
        group = root[name]
        state = "complete" if meta["complete"] else "INCOMPLETE (run convert again)"
        lines += [
            "",
            f"mouse {name} ({meta['kind']}, {state})",
            f"  source   {meta['source_name']}",
        ]
        lines.append(f"  trials   {meta['n_trials']}  " + _tiers(group))
        lines.append(f"  neurons  {meta['n_neurons']}")
        lines.append(f"  {'variable':<20}{'shape':<24}{'dtype':<9}{'chunks':<22}shards")
        variables = [v for v, i in meta["variables"].items() if i["source"].startswith("data/")]
        for var in [*variables, *meta.get("scaled", {}).values()]:
            if var not in group:
                continue
            arr = group[var]
            lines.append(
                f"  {var:<20}{_shape(arr.shape):<24}{arr.dtype!s:<9}"
                f"{_shape(arr.chunks):<22}{_shape(arr.shards)}"
            )
        stored, source = _store_bytes(group), meta.get("source_bytes")
        ratio = f" ({stored / source:.2f}x)" if stored and source else ""
        in_store = "unknown (the server does not list)" if stored is None else format_bytes(stored)
        lines.append(
            f"  size     {in_store} in the store, {format_bytes(source)} of source files{ratio}"
        )
    return "\n".join(lines)


def _tiers(group: zarr.Group) -> str:
    if "tiers" not in group:
        return ""
    counts = Counter(str(v) for v in np.asarray(group["tiers"][...]).flat)
    order = {t: i for i, t in enumerate(TIER_ORDER)}
    tiers = sorted(counts, key=lambda t: (order.get(t, len(order)), t))
    return "(" + ", ".join(f"{t} {counts[t]}" for t in tiers) + ")"
