"""Settings every service shares, read from environment variables (pydantic-settings).

Defaults run the local stack, except secrets: they have no usable default. Every service
checks its secrets before it starts (`startup_problems`) and refuses to run, naming the
variable, when one is empty, too short or a value published somewhere (docs/security.md)."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import tracing
from .operators import digest_problems

# Values that appear in this repository's history, its docs or common examples: a deployment
# that kept one of them would run with a secret anyone can read.
KNOWN_DEFAULT_SECRETS = frozenset({
    "change-me", "changeme", "secret", "password", "osmcloud", "osmcloud-secret", "osmcloud-sandbox-key",
    "minioadmin", "admin", "test",
})
MIN_SECRET_CHARS = 16


def secret_problem(variable: str, value: str, min_chars: int = MIN_SECRET_CHARS) -> str | None:
    """Why `value` cannot serve as the secret `variable`, or None when it can."""
    if not value:
        return f"{variable} is empty; set it to a long random value (e.g. `openssl rand -hex 32`)"
    if value.lower() in KNOWN_DEFAULT_SECRETS:
        return f"{variable} is a published default ({value!r}); set it to a long random value"
    if len(value) < min_chars:
        return f"{variable} is shorter than {min_chars} characters; set it to a long random value"
    return None


class ConfigurationError(RuntimeError):
    """The service cannot start with this configuration; the message names every variable."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # whether the service stores blobs in S3 (then S3_ACCESS_KEY / S3_SECRET_KEY are needed)
    uses_s3: ClassVar[bool] = False

    service_name: str = "service"
    http_host: str = "127.0.0.1"
    http_port: int = 8080

    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = ""  # empty: osmcloud_<service_name>

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = "osmcloud."
    # topics this service creates when missing: partitions (a consumer group spreads over at
    # most that many replicas, so at least the largest replica count of a consuming service;
    # the Helm chart computes it) and copies per partition (1 for the local single broker)
    kafka_topic_partitions: int = Field(default=4, ge=1)
    kafka_topic_replication_factor: int = Field(default=1, ge=1)

    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_bucket: str = "osmcloud-blobs"
    s3_secure: bool = False
    # S3 that is away or stuck fails a request in bounded time (a 503), never hangs it:
    # connecting, and waiting for each answer (a part of an upload included)
    s3_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    s3_read_timeout_seconds: float = Field(default=30.0, gt=0)

    # required: services answer only requests that carry it (nginx adds it)
    gateway_secret: str = ""
    test_clock: bool = Field(default=False, description="let tests move the shared clock; never in production")
    log_level: str = "info"

    # how often the outbox relay looks for events a crash or an outage left behind
    outbox_poll_seconds: float = 1.0
    # consumers: most events one poll hands over (a batch handler gets them together), and
    # how long the broker holds a fetch open when nothing is new (new events end it at once)
    consumer_max_records: int = 2000
    consumer_fetch_max_wait_ms: int = 500
    # how often consumers commit their offsets (each commit costs Kafka ~3.7 ms of CPU); after a
    # crash, the events of up to this long are delivered again (handlers are idempotent)
    consumer_commit_seconds: float = Field(default=1.0, ge=0)
    # read-your-writes: how long a write waits for another service to apply the events it
    # hands over before answering anyway (Kafka then brings them; see handover.py)
    handover_timeout_seconds: float = 5.0
    # false: writes answer without handing over (events by Kafka only, as before ADR 0004, so
    # clients may see the lag). Only for measuring what the hand-over costs
    # (benchmarks/read_your_writes.py); never in production.
    handover: bool = True
    # how often every consumer group's lag is measured from the broker (/metrics)
    consumer_lag_poll_seconds: float = Field(default=15.0, gt=0)
    # the admin API (/admin/api/<service>/, docs/operators.md): SHA-256 digests (hex, comma-
    # separated) of the operator tokens; empty: the admin API is off (its routes answer 404)
    operator_token_sha256: str = ""
    # how long audit log entries are kept (docs/operators.md "Audit log")
    audit_retention_days: float = Field(default=365.0, gt=0)

    # traces (tracing.py): the standard OpenTelemetry variables; off unless an exporter or an
    # OTLP endpoint is named. The SDK reads the others it knows (sampler, headers, batching).
    otel_sdk_disabled: bool = False
    otel_traces_exporter: str = ""
    otel_exporter_otlp_endpoint: str = ""
    otel_exporter_otlp_traces_endpoint: str = ""
    otel_exporter_otlp_protocol: str = ""
    otel_exporter_otlp_traces_protocol: str = ""
    otel_service_name: str = ""

    @property
    def database_name(self) -> str:
        return self.mongo_db or f"osmcloud_{self.service_name}"

    def startup_problems(self) -> list[str]:
        """Every reason this configuration must not start (empty: it may). Services add theirs."""
        problems = [secret_problem("GATEWAY_SECRET", self.gateway_secret), *digest_problems(self.operator_token_sha256)]
        if self.uses_s3:
            if not self.s3_access_key or self.s3_access_key.lower() in KNOWN_DEFAULT_SECRETS:
                problems.append(f"S3_ACCESS_KEY is {'empty' if not self.s3_access_key else 'a published default'}"
                                f"; set the access key of the S3 server's account")
            problems.append(secret_problem("S3_SECRET_KEY", self.s3_secret_key))
        if not self.otel_sdk_disabled:
            problems += tracing.problems(traces_exporter=self.otel_traces_exporter,
                                         otlp_protocol=self.otel_exporter_otlp_protocol,
                                         otlp_traces_protocol=self.otel_exporter_otlp_traces_protocol)
        return [p for p in problems if p]

    def check_startup(self) -> None:
        """Raises ConfigurationError naming every variable that must change."""
        problems = self.startup_problems()
        if problems:
            raise ConfigurationError(f"{self.service_name} refuses to start: " + "; ".join(problems))
