from datetime import UTC, datetime, timedelta

from osmcloud_auth.token_cache import TokenCache, Verified

NOW = datetime(2026, 5, 1, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def cache(entries: int = 10) -> tuple[TokenCache, Monotonic]:
    clock = Monotonic()
    made = TokenCache(max_entries=entries, lease_seconds=5, max_age_seconds=60,
                      last_seen_every=timedelta(seconds=60), monotonic=clock)
    made.registered(clock.t)
    return made, clock


def device(n: int, user: str = "u1", seen: datetime = NOW) -> Verified:
    return Verified(user, f"d{n}", {"X-User-Id": user, "X-Device-Id": f"d{n}"}, seen)


def test_a_stored_answer_is_served():
    c, _ = cache()
    assert c.put("t1", device(1), c.ticket())
    assert c.get("t1", NOW) == device(1)


def test_nothing_is_stored_or_served_without_a_lease():
    c = TokenCache(max_entries=10, lease_seconds=5, max_age_seconds=60, last_seen_every=timedelta(seconds=60))
    assert not c.put("t1", device(1), c.ticket())
    assert c.get("t1", NOW) is None


def test_the_lease_runs_out_from_when_its_renewal_was_sent():
    c, clock = cache()
    c.put("t1", device(1), c.ticket())
    clock.t += 4.9
    assert c.get("t1", NOW) is not None
    clock.t += 0.2  # 5.1 s after the registration was sent: nothing may be served
    assert c.get("t1", NOW) is None
    c.lease_renewed(clock.t - 0.1)
    assert c.get("t1", NOW) is not None, "an unfenced replica was told of every revocation"


def test_a_lost_lease_flushes_everything():
    c, clock = cache()
    c.put("t1", device(1), c.ticket())
    c.lease_lost()
    c.registered(clock.t)
    assert c.get("t1", NOW) is None


def test_dropping_a_device_forgets_its_token_and_no_other():
    c, _ = cache()
    c.put("t1", device(1), c.ticket())
    c.put("t2", device(2), c.ticket())
    assert c.drop(device_ids=["d1"]) == 1
    assert c.get("t1", NOW) is None
    assert c.get("t2", NOW) is not None


def test_dropping_a_user_forgets_every_device_of_theirs():
    c, _ = cache()
    c.put("t1", device(1, "u1"), c.ticket())
    c.put("t2", device(2, "u1"), c.ticket())
    c.put("t3", device(3, "u2"), c.ticket())
    assert c.drop(user_id="u1") == 2
    assert c.get("t3", NOW) is not None


def test_a_read_that_raced_a_revocation_is_not_stored():
    c, _ = cache()
    ticket = c.ticket()  # verify starts reading the database ...
    c.drop(device_ids=["d1"])  # ... a logout drops the device meanwhile ...
    assert not c.put("t1", device(1), ticket)  # ... so what the read saw is never served later
    assert c.get("t1", NOW) is None


def test_a_read_begun_before_registration_is_not_stored():
    c = TokenCache(max_entries=10, lease_seconds=5, max_age_seconds=60, last_seen_every=timedelta(seconds=60))
    ticket = c.ticket()
    c.registered(1000.0)
    assert not c.put("t1", device(1), ticket)


def test_entries_are_refreshed_when_last_seen_is_due_or_they_are_old():
    c, clock = cache()
    c.put("t1", device(1, seen=NOW), c.ticket())
    assert c.get("t1", NOW + timedelta(seconds=59)) is not None
    assert c.get("t1", NOW + timedelta(seconds=60)) is None  # the database read touches last_seen_at
    c.put("t1", device(1, seen=NOW), c.ticket())
    clock.t += 60
    c.lease_renewed(clock.t)
    assert c.get("t1", NOW) is None


def test_the_oldest_entry_makes_room():
    c, _ = cache(entries=2)
    for n in range(3):
        c.put(f"t{n}", device(n), c.ticket())
    assert len(c) == 2
    assert c.get("t0", NOW) is None and c.get("t2", NOW) is not None


def test_zero_entries_switches_the_cache_off():
    c, _ = cache(entries=0)
    assert not c.put("t1", device(1), c.ticket())
    assert c.get("t1", NOW) is None
