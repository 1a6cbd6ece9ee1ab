"""The admin API through the gateway on the real stack (docs/operators.md): an operator's plan
reaches the user's next upload at once, revoking starts the grace year, overrides are enforced
exactly, the export holds what the user stored, a dead letter is replayed once, a user's token
opens no admin route, and every action is in the audit log. Each test calls from addresses of
its own (X-Forwarded-For; the test stack trusts 127.0.0.1 as a proxy), so the admin rate limit
of one test never meets another's."""

import hashlib
import io
import json
import random
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from bson import ObjectId
from pymongo import AsyncMongoClient

from osmcloud_common.events import Entitlement, SubscriptionActivated, make_event
from osmcloud_localstack.client import GatewayClient, count_mails, eventually, login, osmand_sign_up, read_code

SPEC = Path(__file__).resolve().parents[2] / "docs" / "admin-openapi.yaml"
SERVICES = ("auth", "files", "trash", "billing")
TRACK = b"<gpx><trk><name>ride</name></trk></gpx>"


def new_address() -> str:
    return f"198.51.{random.randint(0, 255)}.{random.randint(1, 254)}"


class Operator:
    """The admin API's client: the operator token, calls from one client address."""

    def __init__(self, gateway: GatewayClient, token: str, address: str | None = None) -> None:
        self.client = gateway.with_token(token)
        self.address = address or new_address()

    async def call(self, method: str, path: str, **kw):
        headers = {"X-Forwarded-For": self.address, **kw.pop("headers", {})}
        return await self.client.call(method, path, headers=headers, **kw)

    async def audit(self, service: str, **params) -> list[dict]:
        reply = await self.call("GET", f"/admin/api/{service}/audit", params=params)
        assert reply.status == 200, reply
        return reply.body["entries"]


@pytest.fixture
def operator(stack, gateway) -> Operator:
    assert stack.operator_token, "the test stack runs the admin API (OPERATOR_TOKEN_SHA256)"
    return Operator(gateway, stack.operator_token)


async def put(me: GatewayClient, path: str, body: bytes, **params):
    return await me.call("PUT", f"/api/files/{path}", data=body, params=params or None)


def admin_operations() -> list[tuple[str, str]]:
    ops = []
    for path, item in yaml.safe_load(SPEC.read_text())["paths"].items():
        for method in item:
            if method in ("get", "put", "post", "delete"):
                for service in (SERVICES if "{service}" in path else ("",)):
                    concrete = (path.replace("{service}", service).replace("{user_id}", "u" + uuid.uuid4().hex)
                                .replace("{letter_id}", str(ObjectId())))
                    ops.append((method.upper(), concrete))
    return ops


async def test_a_user_token_opens_no_admin_route(stack, gateway, operator):
    me, session = await login(gateway, stack.smtp_sink_url)
    operations = admin_operations()
    assert len(operations) >= 20
    for method, path in operations:
        headers = {"X-Forwarded-For": new_address()}
        as_user = await me.call(method, path, json={}, headers=headers)
        assert as_user.status == 403 and as_user.error_code() == "not_an_operator", (method, path, as_user)
        anonymous = await gateway.with_token(None).call(method, path, json={}, headers=headers)
        assert anonymous.status == 401, (method, path, anonymous)
        # the user's own identity never reaches an admin route: a forged header changes nothing
        forged = await me.call(method, path, json={}, headers={**headers, "X-User-Id": session["user_id"]})
        assert forged.status == 403, (method, path, forged)
    # refusals are audited, with the address and without the token
    refused = await operator.audit("billing", action="admin-refused", limit=500)
    assert refused and all(e["outcome"] in ("not_an_operator", "unauthorized") for e in refused)
    assert me.token not in json.dumps(refused)


async def test_the_admin_api_is_rate_limited_per_address(gateway, operator):
    flood = Operator(gateway, "not-a-token", address=new_address())
    statuses = []
    for _ in range(400):  # 5 r/s after a burst of 50: a quick sequence meets 429 long before the end
        statuses.append((await flood.call("GET", "/admin/api/auth/health")).status)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses) <= {403, 429} and len(statuses) > 50
    assert (await operator.call("GET", "/admin/api/auth/health")).status == 200  # another address


async def test_grant_pro_allows_the_next_upload_at_once_and_revoke_starts_grace(stack, gateway, operator):
    me, session = await login(gateway, stack.smtp_sink_url)
    user_id = session["user_id"]
    assert (await put(me, "GPX/tracks/ride.gpx", TRACK)).error_code() == "no_plan"

    granted = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan", json={"plan": "pro"})
    assert granted.status == 200, granted
    assert granted.body["plan"] == "pro" and granted.body["expires_at"] is None
    assert granted.body["event"] == "subscription-activated"
    assert granted.body["operator_grant"]["by"].startswith("operator:")
    uploaded = await put(me, "GPX/tracks/ride.gpx", TRACK)  # at once: no wait, no retry
    assert uploaded.status == 201, uploaded
    account = (await me.call("GET", "/api/billing/account")).body
    assert (account["plan"], account["status"]) == ("pro", "active")

    revoked = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan", json={"plan": "none"})
    assert revoked.status == 200 and revoked.body["event"] == "subscription-expired", revoked
    assert revoked.body["status"] == "in_grace" and revoked.body["operator_grant"] is None
    grace_until = datetime.fromisoformat(revoked.body["grace_until"])
    assert timedelta(days=364) < grace_until - datetime.fromisoformat(revoked.body["expires_at"]) <= timedelta(days=365)
    refused = await put(me, "GPX/tracks/new.gpx", TRACK)
    assert refused.status == 403 and refused.error_code() == "grace_period", refused
    download = await me.call("GET", "/api/files/GPX/tracks/ride.gpx")
    assert download.status == 200 and download.body == TRACK
    assert (await put(me, "FAVOURITES/favourites.gpx", b"<gpx/>")).status == 201  # Start rules

    # an end date in the past is refused; Pro until a date is that date
    past = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    assert (await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan",
                                json={"plan": "pro", "until": past})).status == 409
    until = (datetime.now(UTC) + timedelta(days=400)).replace(microsecond=0)
    again = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan",
                                json={"plan": "pro", "until": until.isoformat()})
    assert again.body["event"] == "subscription-renewed" and datetime.fromisoformat(again.body["expires_at"]) == until
    assert (await put(me, "GPX/tracks/new.gpx", TRACK)).status == 201

    entries = await operator.audit("billing", user_id=user_id)
    sets = [e for e in entries if e["action"] == "plan-set"]
    assert len(sets) == 4 and all(e["actor"].startswith("operator:") for e in sets)
    assert {e["address"] for e in sets} == {operator.address}
    assert sorted(e["outcome"] for e in sets) == ["end_in_past", "ok", "ok", "ok"]

    async def plan_changes():  # from billing's events on Kafka: they may lag the answers
        found = [e["detail"]["event"] for e in await operator.audit("billing", user_id=user_id, action="plan-changed")]
        return found if len(found) == 3 else None
    assert sorted(await eventually(plan_changes, interval=0.5, what="plan changes in the audit log")) == \
        ["subscription-activated", "subscription-expired", "subscription-renewed"]


async def test_quota_and_file_count_overrides_are_enforced_exactly(stack, gateway, operator):
    me, session = await login(gateway, stack.smtp_sink_url)
    user_id = session["user_id"]
    assert (await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan",
                                json={"plan": "pro"})).status == 200
    set_ = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/overrides",
                               json={"quota_bytes": 10_000, "max_files": 3})
    assert set_.status == 200 and set_.body["event"] == "entitlement-changed", set_
    assert set_.body["overrides"] == {"quota_bytes": 10_000, "max_files": 3}

    assert (await put(me, "GPX/a.gpx", b"a" * 6_000)).status == 201
    over = await put(me, "GPX/b.gpx", b"b" * 4_001)
    assert over.status == 413 and over.error_code() == "quota_exceeded", over
    assert (await put(me, "GPX/b.gpx", b"b" * 4_000)).status == 201  # exactly the quota
    usage = (await me.call("GET", "/api/files/usage")).body
    assert usage["used_bytes"] == 10_000 == usage["quota_bytes"]
    assert (await put(me, "GPX/c.gpx", b"")).status == 201  # the third file, empty
    fourth = await put(me, "GPX/d.gpx", b"")
    assert fourth.error_code() == "file_quota_exceeded", fourth

    invalid = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/overrides", json={"quota_bytes": -1})
    assert invalid.status == 400
    cleared = await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/overrides",
                                  json={"quota_bytes": None, "max_files": None})
    assert cleared.body["overrides"] is None
    assert (await put(me, "GPX/d.gpx", b"d" * 5_000)).status == 201  # Pro's own quota again, at once
    files_view = (await operator.call("GET", f"/admin/api/files/accounts/{user_id}")).body
    assert files_view["file_count"] == 4 and files_view["entitlement"]["plan"] == "pro"


async def test_export_zip_holds_what_the_user_stored(stack, gateway, operator):
    me, session = await login(gateway, stack.smtp_sink_url)
    user_id = session["user_id"]
    await operator.call("PUT", f"/admin/api/billing/accounts/{user_id}/plan", json={"plan": "pro"})
    stored = {("GPX", "tracks/2024/ride.gpx"): TRACK, ("FAVOURITES", "favourites.gpx"): b"<gpx>v2</gpx>",
              ("GLOBAL", "settings.json"): bytes(range(256)) * 400}
    first = await put(me, "FAVOURITES/favourites.gpx", b"<gpx>v1</gpx>")
    for (file_type, name), body in stored.items():
        params = {"base_version": first.body["version_id"]} if name == "favourites.gpx" else {}
        assert (await put(me, f"{file_type}/{name}", body, **params)).status == 201
    assert (await put(me, "GPX/gone.gpx", b"<gpx/>")).status == 201
    assert (await me.call("DELETE", "/api/files/GPX/gone.gpx")).status in (200, 204)
    listing = {(f["type"], f["name"]): f for f in (await me.call("GET", "/api/files")).body["files"]}

    reply = await operator.call("GET", f"/admin/api/files/accounts/{user_id}/export")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/zip", reply.status
    archive = zipfile.ZipFile(io.BytesIO(reply.body))
    manifest = json.loads(archive.read("manifest.json"))
    assert {(f["type"], f["name"]) for f in manifest["files"]} == set(stored)
    for entry in manifest["files"]:
        content = archive.read(entry["path"])
        assert content == stored[(entry["type"], entry["name"])]
        assert entry["checksum"] == f"sha256:{hashlib.sha256(content).hexdigest()}"
        assert entry["checksum"] == listing[(entry["type"], entry["name"])]["checksum"]
        assert entry["version_id"] == listing[(entry["type"], entry["name"])]["version_id"]

    every = await operator.call("GET", f"/admin/api/files/accounts/{user_id}/export", params={"versions": "all"})
    all_manifest = json.loads(zipfile.ZipFile(io.BytesIO(every.body)).read("manifest.json"))
    favourites = sorted(zipfile.ZipFile(io.BytesIO(every.body)).read(f["path"]) for f in all_manifest["files"]
                        if f["name"] == "favourites.gpx")
    assert favourites == [b"<gpx>v1</gpx>", b"<gpx>v2</gpx>"]
    assert len(all_manifest["files"]) == 5  # deleted files' versions too (gone.gpx), not its marker

    exported = await operator.audit("files", user_id=user_id, action="account-exported")
    assert len(exported) == 2 and exported[0]["address"] == operator.address


async def test_a_dead_letter_is_listed_replayed_once_and_discarded(stack, gateway, operator):
    """A dead letter as files' consumer writes one (the event, its user, the error), for an
    entitlement event files never applied; replayed, it takes effect at once, and only once."""
    me, session = await login(gateway, stack.smtp_sink_url)
    user_id = session["user_id"]
    pro = Entitlement(plan="pro", quota_bytes=3000 * 1024 * 1024, allowed_types=None)
    event = make_event(SubscriptionActivated(entitlement=pro), user_id=user_id, producer="billing",
                       occurred_at=datetime.now(UTC))
    mongo = AsyncMongoClient(stack.mongo_url)
    try:
        letters = mongo[f"{stack.db_prefix}files"]["dead_letters"]
        inserted = await letters.insert_one({"event": event.model_dump(mode="json"), "user_id": user_id,
                                             "error": "RuntimeError('made on purpose')", "at": datetime.now(UTC)})
        unreadable = await letters.insert_one({"raw": "{not json", "user_id": None, "error": "unreadable",
                                               "at": datetime.now(UTC)})
        letter_id = str(inserted.inserted_id)
        listed = (await operator.call("GET", "/admin/api/files/dead-letters", params={"limit": "200"})).body
        mine = [d for d in listed["dead_letters"] if d["id"] == letter_id]
        assert mine and mine[0]["event_type"] == "subscription-activated" and "on purpose" in mine[0]["error"]
        assert mine[0]["event_id"] == event.id and mine[0]["user_id"] == user_id

        assert (await put(me, "GPX/ride.gpx", TRACK)).error_code() == "no_plan"
        replayed = await operator.call("POST", f"/admin/api/files/dead-letters/{letter_id}/replay")
        assert replayed.status == 200 and replayed.body["applied"] is True, replayed
        assert (await put(me, "GPX/ride.gpx", TRACK)).status == 201  # in effect at once
        again = await operator.call("POST", f"/admin/api/files/dead-letters/{letter_id}/replay")
        assert again.status == 404
        assert await mongo[f"{stack.db_prefix}files"]["processed_events"].count_documents({"_id": event.id}) == 1

        not_replayable = await operator.call("POST", f"/admin/api/files/dead-letters/{unreadable.inserted_id}/replay")
        assert not_replayable.status == 409 and not_replayable.error_code() == "not_replayable"
        discarded = await operator.call("DELETE", f"/admin/api/files/dead-letters/{unreadable.inserted_id}")
        assert discarded.status == 200 and await letters.find_one({"_id": unreadable.inserted_id}) is None
    finally:
        await mongo.close()
    actions = [e["action"] for e in await operator.audit("files", action="dead-letter-replayed", limit=500)]
    assert actions


async def test_lookup_logout_delete_and_the_audit_trail_of_an_account(stack, gateway, operator):
    address = new_address()
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    phone, session = await login(gateway, stack.smtp_sink_url, email=email)
    user_id = session["user_id"]
    # a second device, from another address (codes are per address), after a wrong code there:
    # the failure is audited with the e-mail and the address, never the code
    here = {"X-Forwarded-For": address}
    before = await count_mails(gateway.session, stack.smtp_sink_url, email)
    assert (await gateway.call("POST", "/api/auth/login-codes", json={"email": email}, headers=here)).status == 202
    code = await read_code(gateway.session, stack.smtp_sink_url, email, after=before)
    wrong_code = "1" + code[1:] if code[0] != "1" else "2" + code[1:]
    device = {"name": "tablet", "brand": "Acme", "model": "T1", "platform": "android"}
    wrong = await gateway.call("POST", "/api/auth/sessions", headers=here,
                               json={"email": email, "code": wrong_code, "device": device})
    assert wrong.status in (400, 401, 403), wrong
    second = await gateway.call("POST", "/api/auth/sessions", headers=here,
                                json={"email": email, "code": code, "device": device})
    assert second.status == 201, second
    tablet = gateway.with_token(second.body["token"])

    found = await operator.call("GET", "/admin/api/auth/accounts", params={"email": email.upper()})
    assert found.status == 200 and found.body["user_id"] == user_id and len(found.body["devices"]) == 2
    assert found.body["last_seen_at"]
    assert (await operator.call("GET", "/admin/api/auth/accounts",
                                params={"email": "nobody@example.com"})).status == 404

    one = found.body["devices"][0]["id"]
    out = await operator.call("POST", f"/admin/api/auth/accounts/{user_id}/logout", json={"device_id": one})
    assert out.body["logged_out"] == [one]
    rest = await operator.call("POST", f"/admin/api/auth/accounts/{user_id}/logout", json={})
    assert len(rest.body["logged_out"]) == 1
    for device in (phone, tablet):  # logged out at once
        assert (await device.call("GET", "/api/auth/account")).status == 401

    entries = await operator.audit("auth", user_id=user_id)
    actions = [e["action"] for e in entries]
    assert actions.count("login") == 2 and actions.count("devices-logged-out") == 2
    refused = [e for e in await operator.audit("auth", action="login-refused", limit=500)
               if e["detail"].get("email") == email]
    assert refused and refused[0]["address"] == address and wrong_code not in json.dumps(refused)
    logins = [e for e in entries if e["action"] == "login"]
    assert {e["address"] for e in logins} >= {address} and all(e["actor"] == user_id for e in logins)

    deleted = await operator.call("DELETE", f"/admin/api/auth/accounts/{user_id}")
    assert deleted.status == 200
    assert (await operator.call("GET", f"/admin/api/auth/accounts/{user_id}")).status == 404

    async def erased():  # auth erases the account's entries when account-deleted comes back from Kafka
        left = await operator.audit("auth", user_id=user_id)
        return left if [e["action"] for e in left] == ["account-deleted"] else None
    left = await eventually(erased, interval=0.5,  # under the admin API rate limit (5/s)
                            what="the account's audit entries erased but for the deletion record")
    assert left[0]["user_id"].startswith("sha256:") and email not in json.dumps(left)


async def test_health_reconcile_and_purge_now(operator):
    for service in SERVICES:
        health = await operator.call("GET", f"/admin/api/{service}/health")
        assert health.status == 200 and health.body["ready"] is True, health
        assert "outbox_backlog" in health.body and "consumer_lag" in health.body
    assert (await operator.call("POST", "/admin/api/files/reconcile")).status == 200
    purge = await operator.call("POST", "/admin/api/trash/purge")
    assert purge.status == 200 and purge.body["purged"] >= 0
    assert [e["action"] for e in await operator.audit("trash", action="trash-purge-run")]


async def test_an_osmand_sign_in_is_audited_under_the_account(stack, gateway, operator):
    email = f"osmand-{uuid.uuid4().hex[:12]}@example.com"
    await osmand_sign_up(gateway, stack.smtp_sink_url, email=email)
    user_id = (await operator.call("GET", "/admin/api/auth/accounts", params={"email": email})).body["user_id"]
    actions = [e["action"] for e in await operator.audit("auth", user_id=user_id)]
    assert "login" in actions and "account-looked-up" in actions


async def test_a_users_own_plan_change_is_audited_with_its_address(stack, gateway, operator):
    me, session = await login(gateway, stack.smtp_sink_url)
    address = new_address()
    assert (await me.call("POST", "/api/billing/start", headers={"X-Forwarded-For": address})).status == 201
    requested = await operator.audit("billing", user_id=session["user_id"], action="plan-requested")
    assert [(e["actor"], e["address"], e["outcome"], e["detail"]["asked"]) for e in requested] == \
        [(session["user_id"], address, "ok", "start")]
