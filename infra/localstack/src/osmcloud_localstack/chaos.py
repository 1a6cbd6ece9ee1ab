"""Chaos: a mix of clients on both APIs while each process of a local stack is killed with
SIGKILL in turn (files also as one of two replicas behind the gateway: chaos_replica.py);
after each fault, once it is back and the system has settled, the invariants (invariants.py)
are checked against the databases, the bucket and Kafka.

Used by benchmarks/chaos.py (`make chaos`, its own stack) and its short version in
tests/integration/test_chaos.py. Loopback only: every address is the stack's 127.0.0.1.

Per fault: traffic for `warm` seconds; SIGKILL to the process group; the process is back
either because something else restarted it (a supervisor) or, if it is not running after
`restart_after` seconds, because we start it through the stack's own start function — the
table says which; "recovered" is when it is ready and a call through the gateway succeeds;
the fault window runs from the kill to `margin` seconds after that. Traffic goes on for
`after` seconds, then pauses while the invariants are polled until they hold or `settle`
seconds pass (waiting here is the point: the reconciler, relays and consumers catch up)."""

from __future__ import annotations

import asyncio
import gzip
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from .chaos_replica import second_files_replica
from .client import count_mails, read_code
from .invariants import (
    Book,
    FileClaim,
    Outcome,
    RequestRecord,
    Snapshot,
    answers_outside_faults,
    check_all,
    idempotent_calls_retried,
    osmand_status,
    read_snapshot,
    redelivered,
    sha256_of,
)
from .procs import group_members, is_running, record_matches
from .stack import SERVICES, Stack

PROCESSES = (*SERVICES, "kafka", "ferretdb", "versitygw", "gateway")
# `files-replica`: files killed while a second files replica serves behind the gateway
# (chaos_replica.py); nginx must pass idempotent calls on to the replica that lives
REPLICA = "files-replica"
FAULTS = (*SERVICES, REPLICA, "kafka", "ferretdb", "versitygw", "gateway")
# what the chaos stack shortens so that recovery from a crash fits a run: an operation of a
# killed files process is taken for dead after OPERATION_TTL_SECONDS (+ a quarter of it),
# looked for every RECONCILE_SECONDS; a purge claim of a killed trash process is taken over
# after CLAIM_LEASE_SECONDS
CHAOS_SERVICE_ENV = {"OPERATION_TTL_SECONDS": "8", "RECONCILE_SECONDS": "1", "CLAIM_LEASE_SECONDS": "8"}
BOUNDARY = "CowMooCowMooCowCowCow"
# the signed-in clients' tokens by user id, as they are now
Tokens = Callable[[], dict[str, str]]
START_TYPES = ("FAVOURITES", "GLOBAL", "PROFILE", "OSM_NOTES")
PRO_TYPES = ("GPX", "FAVOURITES", "PROFILE")


@dataclass
class Plan:
    """How big a run is: bounded in count and time."""

    faults: tuple[str, ...] = FAULTS
    kills: int = 1  # kills per process
    clients: int = 6  # concurrent clients (half native, half OsmAnd's protocol)
    warm: float = 3.0
    after: float = 3.0
    restart_after: float = 3.0
    margin: float = 2.0
    settle: float = 60.0
    large_bytes: int = 3 * 1024 * 1024
    deadline: float = 900.0  # the whole run, seconds
    seed: int = 1


@dataclass
class FaultRow:
    fault: str
    requests: int = 0
    errors_during: int = 0
    recover_s: float = 0.0
    restarted_by: str = ""
    settle_s: float = 0.0
    lost: int = 0
    orphans: int = 0
    duplicates: int = 0
    other: int = 0
    redelivered: int = 0
    events: int = 0  # events read from Kafka for the last snapshot (0: the event checks saw nothing)
    violations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())


# ---------------------------------------------------------------- controlling processes
class LocalControl:
    """Kills and restarts processes of a Stack run from this machine's state directory."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def pid(self, name: str) -> int | None:
        rec = self.stack.procs.running(name)
        return rec.pid if rec else None

    def ready(self, name: str) -> bool:
        return self.pid(name) is not None and self.stack._ready(name)() is None

    def kill(self, name: str) -> int:
        """SIGKILL to the process and its group (nginx's workers die with their master, as
        in a container); returns once nothing of it runs."""
        rec = self.stack.procs.running(name)
        if rec is None:
            raise RuntimeError(f"{name} is not running; nothing to kill")
        try:
            os.killpg(rec.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.stack.procs.running(name)  # reaps it where we are its parent
            if not record_matches(rec) and not [p for p in group_members(rec) if is_running(p)]:
                return rec.pid
            time.sleep(0.05)
        raise RuntimeError(f"{name} (pid {rec.pid}) still runs 10 s after SIGKILL")

    def start(self, name: str) -> None:
        self.stack.start_process(name)


# ---------------------------------------------------------------- the clients
class Http:
    """Calls through the gateway, each recorded in the book (status 0: no answer)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, book: Book) -> None:
        self.session, self.base, self.book = session, base.rstrip("/"), book

    async def call(self, method: str, path: str, *, token: str | None = None, record: bool = True,
                   raw: bool = False, **kw: Any) -> tuple[int, Any]:
        """(status, body): JSON decoded unless `raw` (then the bytes as served)."""
        headers = dict(kw.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        status, body, is_json, error = 0, None, False, ""
        try:
            async with self.session.request(method, self.base + path, headers=headers, **kw) as response:
                data = await response.read()
                status, is_json = response.status, response.content_type == "application/json"
                body = data
                if is_json and not raw:
                    try:
                        body = await response.json()
                    except ValueError:
                        is_json = False
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            error = type(exc).__name__
        if record:
            path = path.split("?")[0]
            self.book.requests.append(RequestRecord(method, path, started, time.monotonic(), status, is_json, error,
                                                    osmand_status(path, status, body)))
        return status, body


class Unanswered(Exception):
    """A call got no answer or a 5xx: its effect is uncertain."""


@dataclass
class FileState:
    file_type: str
    name: str
    content: bytes
    version_id: str | None
    marker: str | None = None  # set while in the trash
    versions: set[str] = field(default_factory=set)


class Client:
    """One person's device: signs up, then uploads, deletes, restores, purges; every answer
    is written to the book as what the file must be now."""

    def __init__(self, n: int, http: Http, book: Book, sink_url: str, sandbox_key: str, plan: Plan,
                 rng: random.Random, osmand: bool) -> None:
        self.n, self.http, self.book, self.sink, self.key, self.plan = n, http, book, sink_url, sandbox_key, plan
        self.rng, self.osmand = rng, osmand
        self.token: str | None = None
        self.user_id = ""
        self.email = ""
        self.device: dict[str, Any] = {}
        self.signed_up_at = 0.0
        self.pro = False
        self.files: dict[str, FileState] = {}
        self.counter = 0
        self.refusals: Counter[str] = Counter()  # 4xx answers (nothing changed), by call and reason

    # -------------------------------------------------------- bookkeeping
    def _claim(self, f: FileState, outcomes: list[Outcome]) -> None:
        self.book.claim(FileClaim(self.user_id, f.file_type, f.name, outcomes, set(f.versions)))

    def _live(self, f: FileState) -> Outcome:
        return Outcome("live", sha256_of(f.content), f.version_id)

    def _uncertain(self, f: FileState, before: Outcome, after: Outcome) -> None:
        """The call was cut off: either outcome may hold; the file is left alone from now on."""
        self._claim(f, [before, after])
        self.files.pop(f"{f.file_type}/{f.name}", None)

    async def _call(self, method: str, path: str, ok: tuple[int, ...], **kw: Any) -> Any | None:
        """The answer's body on success; None when refused (4xx: nothing changed); Unanswered."""
        status, body = await self.http.call(method, path, token=self.token, **kw)
        if status in ok:
            return body
        if status == 0 or status >= 500 or osmand_status(path, status, body) >= 500:
            await asyncio.sleep(0.3)  # a client backs off while the server is away
            raise Unanswered(f"{method} {path}: {status}")
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.refusals[f"{method} {'/'.join(path.split('/')[:3])} {status} "
                      f"{error.get('code') or error.get('errorCode') or ''} {str(error.get('message'))[:60]}"] += 1
        await asyncio.sleep(0.05)
        return None

    # -------------------------------------------------------- sign-up and plans
    async def sign_up(self) -> None:
        self.email = f"chaos-{self.n}-{uuid.uuid4().hex[:10]}@example.test"
        http, anon = self.http, None
        before = await count_mails(http.session, self.sink, self.email)
        if self.osmand:
            phone = str(uuid.uuid4())
            status, _ = await http.call("POST", "/userdata/user-register", data={
                "email": self.email, "login": "false", "lang": "en", "deviceid": phone}, token=anon)
            if status != 200:
                raise Unanswered(f"user-register {status}")
            code = await read_code(http.session, self.sink, self.email, after=before)
            status, body = await http.call("POST", "/userdata/device-register", data={
                "email": self.email, "token": code, "deviceid": phone, "brand": "Google", "model": "Pixel",
                "lang": "en"}, token=anon)
            if status != 200:
                raise Unanswered(f"device-register {status}")
            self.device, self.token = body, body["accesstoken"]
            status, account = await http.call("GET", "/api/auth/account", token=self.token)
            if status != 200:
                raise Unanswered(f"account {status}")
            self.user_id = account["user_id"]  # the same device serves both APIs
        else:
            status, _ = await http.call("POST", "/api/auth/login-codes", json={"email": self.email})
            if status != 202:
                raise Unanswered(f"login-codes {status}")
            code = await read_code(http.session, self.sink, self.email, after=before)
            status, body = await http.call("POST", "/api/auth/sessions", json={
                "email": self.email, "code": code,
                "device": {"name": f"chaos {self.n}", "brand": "Acme", "model": "A1", "platform": "android"}})
            if status != 201:
                raise Unanswered(f"sessions {status}")
            self.token, self.user_id = body["token"], body["user_id"]
        self.book.users.add(self.user_id)
        self.signed_up_at, self.files, self.pro = time.monotonic(), {}, False
        if self.osmand or self.rng.random() < 0.3:
            await self._call("POST", "/api/billing/start", (201, 200))
        else:
            await self.purchase()

    async def purchase(self) -> None:
        from osmcloud_billing.receipts import sign_sandbox_receipt

        now = datetime.now(UTC)
        order = f"GPA.chaos-{uuid.uuid4().hex[:12]}"
        receipt = sign_sandbox_receipt(self.key, platform="sandbox", order_id=order,
                                       product_id="osmcloud.pro.monthly", purchased_at=now,
                                       expires_at=now + timedelta(days=30))
        body = await self._call("POST", "/api/billing/purchases", (201, 200), json={
            "platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": order, "receipt": receipt})
        self.pro = self.pro or body is not None

    # -------------------------------------------------------- file operations
    def _new_name(self) -> str:
        self.counter += 1
        return f"chaos/{self.n}-{self.counter}.{'gpx' if self.rng.random() < 0.5 else 'json'}"

    async def upload(self, large: bool = False) -> None:
        types = PRO_TYPES if self.pro else START_TYPES
        live = [f for f in self.files.values() if f.marker is None]
        if live and self.rng.random() < 0.3:  # a new version of a file
            f = self.rng.choice(live)
        else:
            f = FileState(self.rng.choice(types), self._new_name(), b"", None)
        size = self.plan.large_bytes if large and self.pro else self.rng.randint(200, 4096)
        content = os.urandom(16).hex().encode() * (size // 32 + 1)
        if f.marker:
            before = Outcome("deleted", version_id=None if f.marker == "?" else f.marker)
        else:
            before = self._live(f) if f.content else Outcome("purged")  # a new file did not exist
        try:
            if self.osmand:
                body = await self._osmand_upload(f, content)
                version = None
            else:
                body = await self._call("PUT", f"/api/files/{f.file_type}/{f.name}", (201,), data=content,
                                        params={"overwrite": "true"})
                version = body and body["version_id"]
        except Unanswered:
            f.content = content
            self._uncertain(f, before, Outcome("live", sha256_of(content)))
            return
        if body is None:
            return
        f.content, f.version_id, f.marker = content, version, None
        if version:
            f.versions.add(version)
        self.files[f"{f.file_type}/{f.name}"] = f
        self._claim(f, [self._live(f)])

    async def _osmand_upload(self, f: FileState, content: bytes) -> Any:
        creds = {"deviceid": str(self.device["id"]), "accessToken": self.device["accesstoken"]}
        part = gzip.compress(content)
        head = (f"--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{f.name}.gz\"\r\n"
                f"content-type: application/octet-stream\r\n\r\n").encode()
        body = head + part + f"\r\n--{BOUNDARY}--\r\n".encode()
        return await self._call("POST", "/userdata/upload-file", (200,), data=body, params={
            **creds, "name": f.name, "type": f.file_type, "clienttime": str(int(time.time() * 1000)),
            "autoSync": "false"}, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})

    async def delete(self) -> None:
        live = [f for f in self.files.values() if f.marker is None]
        if not live:
            return await self.upload()
        f = self.rng.choice(live)
        try:
            if self.osmand:
                creds = {"deviceid": str(self.device["id"]), "accessToken": self.device["accesstoken"]}
                body = await self._call("POST", "/userdata/delete-file", (200,),
                                        data={**creds, "name": f.name, "type": f.file_type})
                marker = "?" if body is not None else None
            else:
                body = await self._call("DELETE", f"/api/files/{f.file_type}/{f.name}", (200,))
                marker = body and body["version_id"]
        except Unanswered:
            self._uncertain(f, self._live(f), Outcome("deleted"))
            return
        if body is None:
            return
        f.marker = marker
        if marker and marker != "?":
            f.versions.add(marker)
        self._claim(f, [Outcome("deleted", version_id=None if marker == "?" else marker)])

    def _trashed(self) -> list[FileState]:
        return [f for f in self.files.values() if f.marker and f.marker != "?"]

    async def restore(self) -> None:
        trashed = self._trashed()
        if not trashed:
            return await self.delete()
        f = self.rng.choice(trashed)
        try:
            body = await self._call("POST", f"/api/trash/items/{f.marker}/restore", (200,))
        except Unanswered:
            self._uncertain(f, Outcome("deleted", version_id=f.marker), Outcome("live", sha256_of(f.content)))
            return
        if body is None:
            return
        f.marker, f.version_id = None, (body.get("file") or {}).get("version_id")
        if f.version_id:
            f.versions.add(f.version_id)
        self._claim(f, [self._live(f)])

    async def delete_now(self) -> None:
        trashed = self._trashed()
        if not trashed:
            return await self.delete()
        f = self.rng.choice(trashed)
        try:
            body = await self._call("DELETE", f"/api/trash/items/{f.marker}", (200,))
        except Unanswered:
            self._uncertain(f, Outcome("deleted", version_id=f.marker), Outcome("purged"))
            return
        if body is None:
            return
        self.files.pop(f"{f.file_type}/{f.name}", None)
        self._claim(f, [Outcome("purged")])

    async def empty_trash(self) -> None:
        trashed = self._trashed()
        if not trashed:
            return await self.delete()
        try:
            body = await self._call("DELETE", "/api/trash", (200,))
        except Unanswered:
            for f in trashed:
                self._uncertain(f, Outcome("deleted", version_id=f.marker), Outcome("purged"))
            self._emptied()
            return
        if body is None:
            return
        for f in trashed:
            self.files.pop(f"{f.file_type}/{f.name}", None)
            self._claim(f, [Outcome("purged")])
        self._emptied()

    def _emptied(self) -> None:
        """Emptying the trash also purges files this client left alone after an uncertain
        call, where that call left them in the trash. Even a certain empty keeps "deleted"
        possible for them: an uncertain delete may take effect only after the empty answered
        (the process died mid-delete and the reconciler finished the operation later), and
        then its file lands in the trash after the empty, as a delete made after it would."""
        for claim in self.book.claims.values():
            if claim.user_id != self.user_id or not any(o.kind == "deleted" for o in claim.outcomes):
                continue
            claim.outcomes = list(dict.fromkeys([*claim.outcomes, Outcome("purged")]))

    async def delete_account(self) -> bool:
        """Native clients older than the code resend pause (30 s) delete their account; True if
        they did (the client signs up anew)."""
        if self.osmand or time.monotonic() - self.signed_up_at < 31:
            return False
        before = await count_mails(self.http.session, self.sink, self.email)
        if await self._call("POST", "/api/auth/account/deletion-codes", (202,)) is None:
            return False
        mail_code = await read_code(self.http.session, self.sink, self.email, after=before)
        try:
            body = await self._call("POST", "/api/auth/account/delete", (200,), json={"code": mail_code})
        except Unanswered:
            self.book.users.discard(self.user_id)  # deleted or not: this client's claims say nothing now
            for key in [k for k, c in self.book.claims.items() if c.user_id == self.user_id]:
                del self.book.claims[key]
            self.token = None
            return True
        if body is None:
            return False
        self.book.deleted_users.add(self.user_id)
        self.token = None
        return True

    async def step(self) -> None:
        if self.token is None:
            await self.sign_up()
            return
        r = self.rng.random()
        if r < 0.40:
            await self.upload()
        elif r < 0.47:
            await self.upload(large=True)
        elif r < 0.67:
            await self.delete()
        elif r < 0.77 and not self.osmand:
            await self.restore()
        elif r < 0.84 and not self.osmand:
            await self.delete_now()
        elif r < 0.90 and not self.osmand:
            await self.empty_trash()
        elif r < 0.93 and not self.osmand:
            await self.purchase()
        elif r < 0.95:
            await self.delete_account()
        else:
            await self.upload()


async def run_clients(clients: list[Client], running: asyncio.Event, stop: asyncio.Event,
                      failures: Counter[str]) -> None:
    """Each client steps while `running` is set, until `stop`; a failed step (no answer) is
    retried after a short pause — the client's book already says what it may have done."""
    async def loop(c: Client) -> None:
        while not stop.is_set():
            if not running.is_set():
                await asyncio.sleep(0.05)
                continue
            try:
                await c.step()
            except (Unanswered, TimeoutError, aiohttp.ClientError, KeyError, TypeError, ValueError) as exc:
                failures[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
                if c.token is None or not c.user_id:
                    c.token = None  # sign-up cut off: start again
                await asyncio.sleep(0.3)
    await asyncio.gather(*(loop(c) for c in clients))


# ---------------------------------------------------------------- the run
class Chaos:
    def __init__(self, control: LocalControl, endpoints: Any, plan: Plan, say: Callable[[str], None] = print) -> None:
        self.control, self.e, self.plan, self.say = control, endpoints, plan, say
        self.book = Book()
        self.windows: list[tuple[float, float]] = []
        self.rows: list[FaultRow] = []
        self.failures: Counter[str] = Counter()  # client steps that failed, by reason
        self.clients: list[Client] = []

    async def run(self) -> list[FaultRow]:
        from minio import Minio

        e, plan = self.e, self.plan
        rng = random.Random(plan.seed)
        t_end = time.monotonic() + plan.deadline
        s3 = Minio(e.s3_endpoint, access_key=e.s3_access_key, secret_key=e.s3_secret_key, secure=e.s3_secure)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            http = Http(session, e.gateway_url, self.book)
            clients = [Client(n, http, self.book, e.smtp_sink_url, e.sandbox_receipt_key, plan,
                              random.Random(rng.random()), osmand=n % 2 == 1) for n in range(plan.clients)]
            self.clients = clients
            running, stop = asyncio.Event(), asyncio.Event()
            running.set()
            workers = asyncio.create_task(run_clients(clients, running, stop, self.failures))
            tokens = lambda: {c.user_id: c.token for c in clients if c.token}  # noqa: E731
            try:
                for fault in [f for _ in range(plan.kills) for f in plan.faults]:
                    if time.monotonic() > t_end:
                        self.say(f"deadline of {plan.deadline:.0f} s reached: no more faults")
                        break
                    self.rows.append(await self.fault(fault, http, running, s3, tokens))
            finally:
                stop.set()
                await workers
        return self.rows

    async def fault(self, name: str, http: Http, running: asyncio.Event, s3: Any, tokens: Tokens) -> FaultRow:
        if name != REPLICA:
            return await self._fault(name, name, http, running, s3, tokens)
        running.clear()  # no call in flight while nginx takes the second replica
        await self._idle(http)
        replica = second_files_replica(self.control.stack)
        address = await asyncio.to_thread(replica.__enter__)
        self.say(f"{REPLICA}: a second files replica on {address} behind the gateway")
        try:
            return await self._fault(name, "files", http, running, s3, tokens)
        finally:
            running.clear()
            await self._idle(http)
            await asyncio.to_thread(replica.__exit__, None, None, None)

    async def _fault(self, name: str, process: str, http: Http, running: asyncio.Event, s3: Any,
                     tokens: Tokens) -> FaultRow:
        """Kills `process`; the row is called `name`."""
        plan, row = self.plan, FaultRow(name)
        died = await self._died_unprompted()
        first = len(self.book.requests)
        running.set()
        await asyncio.sleep(plan.warm)
        t_kill = time.monotonic()
        old_pid = await asyncio.to_thread(self.control.kill, process)
        self.say(f"killed {process} (pid {old_pid}) with SIGKILL")
        row.restarted_by = await self._bring_back(process, old_pid, t_kill)
        await self._gateway_answers(http, tokens)
        t_back = time.monotonic()
        row.recover_s = t_back - t_kill
        window = (t_kill, t_back + plan.margin)
        self.windows.append(window)
        await asyncio.sleep(plan.after + plan.margin)
        running.clear()
        await asyncio.sleep(0)  # clients finish the step they are in
        await self._idle(http)
        phase = self.book.requests[first:]
        row.requests = len(phase)
        during = [r for r in phase if r.started <= window[1] and r.ended >= window[0]]
        # no answer, a 5xx, or OsmAnd's form of one (400 with errorCode 6)
        row.errors_during = sum(1 for r in during if r.status == 0 or (r.osmand_equivalent or r.status) >= 500)
        statuses = Counter(r.status or f"none ({r.error})" for r in during)
        failed = Counter(f"{r.method} {'/'.join(r.path.split('/')[:3])} {r.status or r.error}" for r in during
                         if r.status == 0 or (r.osmand_equivalent or r.status) >= 500)
        if self.failures:
            self.say(f"{name}: failed client steps so far: {dict(self.failures.most_common(6))}")
        refusals = sum((c.refusals for c in self.clients), Counter())
        if refusals:
            self.say(f"{name}: refusals (4xx) so far: {dict(refusals.most_common(8))}")
        self.say(f"{name}: answers during the fault window: "
                 + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items(), key=str)))
        if failed:
            self.say(f"{name}: failed during the fault window: "
                     + ", ".join(f"{k} x{v}" for k, v in sorted(failed.items())))
        t_settle = time.monotonic()
        violations: dict[str, list[str]] = {}
        snap = Snapshot()
        while True:
            snap = await self._snapshot(http, s3, tokens)
            violations = check_all(snap, self.book)
            if not any(violations.values()) or time.monotonic() - t_settle > plan.settle:
                break
            await asyncio.sleep(1.0)
        row.settle_s = time.monotonic() - t_settle
        violations["answers (5xx only inside a fault, 503 JSON)"] = answers_outside_faults(
            Book(requests=phase), self.windows)
        violations["no process dies unprompted"] = died
        if name == REPLICA:
            violations["idempotent calls passed on to the live replica"] = idempotent_calls_retried(
                Book(requests=phase), window)
        row.violations = violations
        row.lost = len(violations["acknowledged outcomes"]) + len(violations["deleted accounts erased"])
        row.orphans = len(violations["versions ↔ blobs"]) + len(violations["deletes ↔ trash items"])
        row.duplicates = len(violations["effects once"])
        row.other = sum(len(v) for k, v in violations.items()) - row.lost - row.orphans - row.duplicates
        row.redelivered = redelivered(snap)
        row.events = len(snap.events)
        self.say(f"{name}: back in {row.recover_s:.1f} s (restarted by {row.restarted_by}), settled in "
                 f"{row.settle_s:.1f} s, {row.requests} requests, {row.errors_during} failed during the fault, "
                 f"violations: {sum(len(v) for v in violations.values())}")
        for k, v in violations.items():
            for line in v[:5]:
                self.say(f"  VIOLATION [{k}] {line}")
        return row

    async def _died_unprompted(self) -> list[str]:
        """Processes that are not running though nobody killed them since the last check:
        reported, and started again (by a supervisor, or here)."""
        died = []
        for name in PROCESSES:
            if self.control.pid(name) is None:
                await asyncio.sleep(self.plan.restart_after)
                if self.control.pid(name) is None:
                    died.append(f"{name} was not running before its turn (it died on its own; see its log)")
                    await asyncio.to_thread(self.control.start, name)
        return died

    async def _bring_back(self, name: str, old_pid: int, t_kill: float) -> str:
        """Waits for a restart by something else; starts it ourselves after restart_after s."""
        started_here = False
        deadline = t_kill + self.plan.restart_after
        while True:
            pid = self.control.pid(name)
            if pid is not None and pid != old_pid:
                break
            if time.monotonic() >= deadline:
                try:
                    await asyncio.to_thread(self.control.start, name)
                    started_here = True
                except Exception as exc:  # started meanwhile by a supervisor, or slow to get ready
                    if self.control.pid(name) is None:
                        raise
                    started_here = "not ready within" in str(exc)  # ours, still starting: waited for below
                    self.say(f"{name}: {str(exc).splitlines()[0]}")
                break
            await asyncio.sleep(0.1)
        ready_by = time.monotonic() + 180
        while not await asyncio.to_thread(self.control.ready, name):
            if time.monotonic() > ready_by:
                raise RuntimeError(f"{name} not ready 180 s after its restart")
            await asyncio.sleep(0.1)
        return "chaos" if started_here else "supervisor"

    async def _gateway_answers(self, http: Http, tokens: Tokens) -> None:
        """Recovered: a signed-in call through the gateway answers 200 again (not recorded)."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for token in list(tokens().values())[:1]:
                status, _ = await http.call("GET", "/api/files/usage", token=token, record=False)
                if status == 200:
                    return
            if not tokens():
                status, _ = await http.call("GET", "/healthz", record=False)
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError("the gateway did not answer a signed-in call within 120 s of the restart")

    async def _idle(self, http: Http) -> None:
        """Waits until no client call is in flight (the book's last call ended)."""
        await asyncio.sleep(0.1)
        for _ in range(600):
            n = len(self.book.requests)
            await asyncio.sleep(0.1)
            if len(self.book.requests) == n:
                await asyncio.sleep(0.5)
                if len(self.book.requests) == n:
                    return

    async def _snapshot(self, http: Http, s3: Any, tokens: Tokens) -> Snapshot:
        e = self.e
        held = tokens()

        async def download(claim: FileClaim) -> bytes | None:
            token = held.get(claim.user_id)
            if token is None:
                return None
            status, body = await http.call("GET", f"/api/files/{claim.file_type}/{claim.name}", token=token,
                                           record=False, raw=True)
            if status != 200 or not isinstance(body, bytes):
                raise RuntimeError(f"download answered {status}")
            return body

        return await read_snapshot(mongo_url=e.mongo_url, db_prefix=e.db_prefix, s3=s3, bucket=e.s3_bucket,
                                   kafka_bootstrap=e.kafka_bootstrap, topic_prefix=e.topic_prefix, book=self.book,
                                   download=download)


def table(rows: list[FaultRow]) -> str:
    head = (f"{'fault':<13} {'requests':>8} {'errors during':>13} {'recover s':>9} {'restarted by':>12} "
            f"{'settle s':>8} {'lost':>5} {'orphans':>7} {'duplicates':>10} {'other':>5} {'redelivered':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.fault:<13} {r.requests:>8} {r.errors_during:>13} {r.recover_s:>9.1f} {r.restarted_by:>12} "
                     f"{r.settle_s:>8.1f} {r.lost:>5} {r.orphans:>7} {r.duplicates:>10} {r.other:>5} "
                     f"{r.redelivered:>11}")
    return "\n".join(lines)


def markdown_table(rows: list[FaultRow]) -> str:
    lines = ["| fault | requests | errors during | seconds to recover | restarted by | seconds to settle | lost | "
             "orphans | duplicates | other violations | redelivered events |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.fault} | {r.requests} | {r.errors_during} | {r.recover_s:.1f} | {r.restarted_by} | "
                     f"{r.settle_s:.1f} | {r.lost} | {r.orphans} | {r.duplicates} | {r.other} | {r.redelivered} |")
    return "\n".join(lines)


__all__ = ["CHAOS_SERVICE_ENV", "Chaos", "FAULTS", "PROCESSES", "REPLICA", "FaultRow", "LocalControl", "Plan",
           "markdown_table", "table"]
