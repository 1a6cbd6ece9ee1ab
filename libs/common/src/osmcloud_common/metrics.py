"""Prometheus metrics whose values live elsewhere (a counter kept by a consumer, a snapshot
of consumer lag), read when /metrics is scraped. deploy/prometheus/ holds the alert rules
and the dashboard that use them; docs/observability.md lists every metric."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# (label values, value) pairs of one metric family
Samples = Iterable[tuple[tuple[str, ...], float]]


class _FunctionCollector(Collector):
    def __init__(self, kind: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, documentation: str,
                 labels: tuple[str, ...], samples: Callable[[], Samples]) -> None:
        self._kind, self._name, self._doc, self._labels, self._samples = kind, name, documentation, labels, samples

    def collect(self) -> Iterator[Metric]:
        family = self._kind(self._name, self._doc, labels=list(self._labels))
        for values, value in self._samples():
            family.add_metric(list(values), value)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield self._kind(self._name, self._doc, labels=list(self._labels))


def counter_function(registry: CollectorRegistry, name: str, documentation: str,
                     samples: Callable[[], Samples], labels: tuple[str, ...] = ()) -> None:
    """A counter family read from `samples()` at each scrape (name without `_total`)."""
    registry.register(_FunctionCollector(CounterMetricFamily, name, documentation, labels, samples))


def gauge_function(registry: CollectorRegistry, name: str, documentation: str,
                   samples: Callable[[], Samples], labels: tuple[str, ...] = ()) -> None:
    """A gauge family read from `samples()` at each scrape."""
    registry.register(_FunctionCollector(GaugeMetricFamily, name, documentation, labels, samples))
