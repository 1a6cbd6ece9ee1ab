"""Readiness probes: each returns None when ready, else a short reason why not."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import urllib.error
import urllib.request
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def tcp(host: str, port: int, timeout: float = 1.0) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"tcp {host}:{port}: {exc.strerror or exc}"


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET (any status, 4xx/5xx included), None if no HTTP answer."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout) as resp:
            status: int = resp.status  # urlopen is typed as returning Any (it may be any opener's response)
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def http_ok(url: str, timeout: float = 2.0) -> str | None:
    status = http_status(url, timeout)
    if status == 200:
        return None
    return f"GET {url}: {'no answer' if status is None else status}"


def http_answers(url: str, timeout: float = 2.0) -> str | None:
    """Ready when the server answers HTTP at all (e.g. an S3 endpoint answering 403 to anonymous GET /)."""
    return None if http_status(url, timeout) is not None else f"GET {url}: no answer"


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def kafka(bootstrap: str, timeout: float = 5.0) -> str | None:
    """Ready when the cluster answers a metadata request naming a broker and an active controller."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    reason = tcp(host, int(port))
    if reason:
        return reason

    async def probe() -> str | None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(admin.start(), timeout)
            meta = await asyncio.wait_for(admin.describe_cluster(), timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            return f"kafka metadata: {type(exc).__name__}: {exc}"
        finally:
            try:
                await admin.close()
            except Exception:  # noqa: BLE001
                pass
        if not meta.get("brokers"):
            return "kafka metadata: no brokers yet"
        if meta.get("controller_id", -1) < 0:
            return "kafka metadata: no active controller yet"
        return None

    return run_coro(probe())


def mongo(url: str, timeout: float = 2.0) -> str | None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]] = MongoClient(
        url, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
        return None
    except Exception as exc:  # noqa: BLE001
        return f"mongo ping: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        client.close()
