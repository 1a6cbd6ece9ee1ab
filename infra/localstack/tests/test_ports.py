"""Port layout and the free-port check."""

import os
import socket

import pytest

from osmcloud_localstack.ports import PORT_OFFSETS, PortLayout, find_conflicts, port_is_free


def test_layout_follows_the_base_port() -> None:
    p = PortLayout(28080)
    assert p.gateway == 28080
    assert [p.port(s) for s in ("auth", "files", "trash", "billing")] == [28081, 28082, 28083, 28084]
    assert (p.kafka, p.kafka_controller, p.ferretdb, p.versitygw, p.smtp, p.smtp_http) == (
        28090, 28091, 28092, 28093, 28094, 28095,
    )
    assert len(set(p.all().values())) == len(PORT_OFFSETS)


def test_processes_map_to_their_ports() -> None:
    p = PortLayout(8080)
    assert p.for_processes(("kafka", "smtp-sink")) == {
        "kafka": 8090, "kafka-controller": 8091, "smtp-sink": 8094, "smtp-sink-http": 8095,
    }


@pytest.mark.parametrize("base", [80, 65530])
def test_base_port_out_of_range(base: int) -> None:
    with pytest.raises(ValueError):
        PortLayout(base)


def test_a_listening_port_is_reported_with_role_and_holder() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free(port)
        conflicts = find_conflicts({"ferretdb": port})
        assert len(conflicts) == 1
        text = str(conflicts[0])
        assert f"port {port} (wanted by ferretdb)" in text
        assert f"pid {os.getpid()}" in text
    assert port_is_free(port)
    assert find_conflicts({"ferretdb": port}) == []
