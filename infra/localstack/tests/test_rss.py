"""The benchmarks' memory sampler sees memory a process takes while it samples."""

import os
import time

from osmcloud_localstack.rss import RssSampler, rss_bytes

MIB = 1024 * 1024


def test_the_sampler_sees_memory_taken_while_it_runs_and_by_quarter():
    with RssSampler(os.getpid(), every=0.01) as rss:
        time.sleep(0.05)
        held = bytearray(64 * MIB)  # touched: resident
        time.sleep(0.1)
    assert rss.growth >= 48 * MIB, rss.growth
    quarters = rss.growth_by_quarter()
    assert quarters == sorted(quarters) and quarters[-1] == max(rss.samples) - rss.baseline
    assert rss_bytes(os.getpid()) >= rss.baseline + len(held) - 16 * MIB
