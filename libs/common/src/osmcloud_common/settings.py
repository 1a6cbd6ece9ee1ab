"""Settings every service shares, read from environment variables (pydantic-settings).

Defaults run the local stack; docker-compose and the test stack override them."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

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
    s3_access_key: str = "osmcloud"
    s3_secret_key: str = "osmcloud-secret"
    s3_bucket: str = "osmcloud-blobs"
    s3_secure: bool = False

    gateway_secret: str = ""
    test_clock: bool = Field(default=False, description="let tests move the shared clock; never in production")
    log_level: str = "info"

    # how often the outbox relay looks for events a crash or an outage left behind
    outbox_poll_seconds: float = 1.0
    # consumers: most events one poll hands over (a batch handler gets them together), and
    # how long the broker holds a fetch open when nothing is new (new events end it at once)
    consumer_max_records: int = 2000
    consumer_fetch_max_wait_ms: int = 50
    # how often every consumer group's lag is measured from the broker (/metrics)
    consumer_lag_poll_seconds: float = Field(default=15.0, gt=0)

    @property
    def database_name(self) -> str:
        return self.mongo_db or f"osmcloud_{self.service_name}"
