"""How the integration tests pick their system when Docker is wanted but does not answer, and how
a dead container is reported."""

from __future__ import annotations

import pytest

from osmcloud_localstack import testing


@pytest.fixture
def fresh_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testing, "_MODE", None)  # select_mode caches its answer per run
    monkeypatch.delenv("OSMCLOUD_GATEWAY_URL", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/osmcloud-docker.sock")


def test_forced_testcontainers_without_an_answering_daemon_falls_back_to_local(fresh_mode, monkeypatch) -> None:
    monkeypatch.setenv("OSMCLOUD_TEST_MODE", "testcontainers")
    mode, why = testing.select_mode()
    assert mode == "local"
    assert "falling back to local processes" in why
    assert "unix:///nonexistent/osmcloud-docker.sock" in why


def test_without_a_daemon_the_mode_is_local_and_says_where_it_looked(fresh_mode, monkeypatch) -> None:
    monkeypatch.delenv("OSMCLOUD_TEST_MODE", raising=False)
    mode, why = testing.select_mode()
    assert mode == "local" and "no Docker daemon answers at unix:///nonexistent/osmcloud-docker.sock" in why


def test_a_dead_container_is_described_by_name_exit_and_logs() -> None:
    from osmcloud_localstack.containers import Death

    killed = str(Death("kafka", "osmcloud-local/kafka:4.1.1", 137, False, "  | last line"))
    assert killed.startswith("container kafka (osmcloud-local/kafka:4.1.1) died while the tests ran: killed (SIGKILL)")
    assert "  | last line" in killed
    assert "out of memory" in str(Death("mongo", "mongo:7", 137, True, ""))
    assert "exit code 1" in str(Death("s3", "x", 1, False, ""))
