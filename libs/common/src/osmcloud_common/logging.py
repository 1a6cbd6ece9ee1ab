"""structlog JSON logging; the request id and event id are bound through contextvars."""

import logging
import sys
import time

import structlog


def configure_logging(service: str, level: str = "info") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stdout, level=numeric, format="%(message)s")
    # aiokafka is very chatty while a broker is away; its retries are ours to report
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))
    from . import tracing  # (it logs through this module)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([tracing.add_trace_ids] if tracing.enabled() else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)  # structlog answers Any
    return logger


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


class StepTimer:
    """Seconds per step of a long operation, for its log line (which step a slow server
    makes slow)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0) + now - self._last, 3)
        self._last = now
