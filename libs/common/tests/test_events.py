from datetime import UTC, datetime

from osmcloud_common.events import (
    CATALOGUE,
    DOMAINS,
    Entitlement,
    Event,
    FileDeleted,
    SubscriptionActivated,
    make_event,
)


def test_every_event_type_is_unique_and_belongs_to_a_domain():
    assert len(CATALOGUE) == 15
    for name, payload in CATALOGUE.items():
        assert payload.event_type == name
        assert payload.domain in DOMAINS


def test_envelope_round_trips_through_json():
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    payload = FileDeleted(file_type="GPX", name="tracks/a.gpx", category="my_places", tombstone_version_id="t",
                          last_version_id="v", size=10, deleted_at=at)
    event = make_event(payload, user_id="u1", producer="files", occurred_at=at)
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.payload() == payload
    assert again.type == "file-deleted" and again.schema_version == 1


def test_events_get_unique_ids():
    at = datetime(2026, 3, 1, tzinfo=UTC)
    payload = SubscriptionActivated(entitlement=Entitlement(plan="start", quota_bytes=5))
    ids = {make_event(payload, user_id="u", producer="billing", occurred_at=at).id for _ in range(100)}
    assert len(ids) == 100
