"""The order tests run in (every test must stand alone: no test may depend on another's
leftovers or on running after it). OSMCLOUD_TEST_ORDER=reverse runs them backwards;
random or random:<seed> shuffles them (the seed is printed in the header, to repeat a run).
CI runs one of its modes in reverse order (.ci/run)."""

import os
import random

import pytest

ORDER_VARIABLE = "OSMCLOUD_TEST_ORDER"


def _order() -> tuple[str, int | None]:
    raw = os.environ.get(ORDER_VARIABLE, "").strip()
    if raw in ("", "file"):
        return "file", None
    if raw == "reverse":
        return "reverse", None
    kind, _, seed = raw.partition(":")
    if kind != "random" or (seed and not seed.isdigit()):
        raise pytest.UsageError(f"{ORDER_VARIABLE} must be reverse, random or random:<seed>, not {raw!r}")
    return "random", int(seed) if seed else random.SystemRandom().randrange(1_000_000)


_ORDER = _order()


def pytest_report_header(config: pytest.Config) -> str:
    kind, seed = _ORDER
    return f"test order: {kind}" + (f" ({ORDER_VARIABLE}=random:{seed} repeats it)" if seed is not None else "")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    kind, seed = _ORDER
    if kind == "reverse":
        items.reverse()
    elif kind == "random":
        random.Random(seed).shuffle(items)
