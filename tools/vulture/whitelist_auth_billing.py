"""vulture's false positives in services/auth and services/billing (names used in ways it cannot see).

The bare attribute reads are how vulture's whitelists mark names used (ruff's B018 is
silenced per line until pyproject ignores it for tools/vulture/).

Run: .venv/bin/vulture --min-confidence 60 services/auth services/billing tools/vulture/whitelist_auth_billing.py
"""

_ = object()

# pydantic settings fields read by name in osmcloud_common (ServiceSettings, Runtime: service
# names in tracing, Kafka client ids, the admin API's prefix, audit entries)
_.service_name  # AuthSettings.service_name, BillingSettings.service_name
