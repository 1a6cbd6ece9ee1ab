"""The osmcloud system (Kafka, FerretDB, versitygw, SMTP sink, the four services, the nginx
gateway) as local processes without Docker. See ``stack.py`` and ``cli.py``."""

from .paths import FERRETDB_VERSION, KAFKA_VERSION, VERSITYGW_VERSION
from .ports import PortLayout
from .stack import SERVICES, Endpoints, ExternalInfra, Stack, StackConfig, StackError, wipe_state_dir

__all__ = [
    "FERRETDB_VERSION",
    "KAFKA_VERSION",
    "SERVICES",
    "VERSITYGW_VERSION",
    "Endpoints",
    "ExternalInfra",
    "PortLayout",
    "Stack",
    "StackConfig",
    "StackError",
    "wipe_state_dir",
]
