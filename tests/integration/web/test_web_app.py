"""The web app in a real browser (Debian's chromium via Playwright) against the real stack.

Every check follows the action the person took, with nothing in between: the app makes one call
to the server after each action and shows its answer; Playwright waits only for the page to show
it. A server that answered before its effect was visible would leave the page without it, and
the check would fail."""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from datetime import timedelta

from playwright.async_api import expect

from osmcloud_localstack.client import GatewayClient, count_mails, eventually, login, read_code
from osmcloud_localstack.testing import advance_clock, service_now

RESEND_SECONDS = 30  # auth's CODE_RESEND_SECONDS: one code per e-mail per 30 s


# Along a meridian: 0.01 degree of latitude is 1111.95 m, so 2.22 km; climb 30 m; 10 minutes.
RIDE = b"""<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="OsmAnd" xmlns="http://www.topografix.com/GPX/1/1">
  <trk><name>Evening ride</name><trkseg>
    <trkpt lat="52.00" lon="5.0"><ele>0</ele><time>2025-06-01T18:00:00Z</time></trkpt>
    <trkpt lat="52.01" lon="5.0"><ele>30</ele><time>2025-06-01T18:05:00Z</time></trkpt>
    <trkpt lat="52.02" lon="5.0"><ele>10</ele><time>2025-06-01T18:10:00Z</time></trkpt>
  </trkseg></trk>
</gpx>"""

FAVOURITES = b"""<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="OsmAnd" xmlns="http://www.topografix.com/GPX/1/1" xmlns:osmand="https://osmand.net">
  <wpt lat="52.005" lon="5.01"><name>Home</name><type>Family</type>
    <extensions><osmand:color>#ff1f77b4</osmand:color></extensions></wpt>
  <wpt lat="52.015" lon="5.02"><name>Bakery</name><type>Food</type></wpt>
  <wpt lat="52.018" lon="4.99"><name>Cafe</name><type>Food</type></wpt>
  <extensions><osmand:points_groups><group name="Food" color="#ffee8800"/></osmand:points_groups></extensions>
</gpx>"""


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:12]}@example.test"


async def buy_pro(stack, receipts, phone: GatewayClient) -> None:
    """Test set-up: Pro through the sandbox store, then until files has the entitlement."""
    now = await service_now(stack)  # earlier tests move the services' clock
    order_id = f"GPA.{uuid.uuid4().hex[:10]}"
    receipt = receipts.sign(order_id, now - timedelta(days=1), now + timedelta(days=30))
    reply = await phone.call("POST", "/api/billing/purchases", json={
        "platform": "sandbox", "product_id": "osmcloud.pro.monthly", "order_id": order_id, "receipt": receipt})
    assert reply.status == 201, reply

    async def pro():
        return (await phone.call("GET", "/api/files/usage")).body["plan"] == "pro"
    await eventually(pro, what="files applying the Pro entitlement")


async def drop_file(page, name: str, content: bytes) -> None:
    """A file dropped on the files screen, as the browser delivers a drag and drop."""
    await page.evaluate(
        """([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, {type: 'application/gpx+xml'}));
            const target = document.querySelector('section.files');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
            }
        }""",
        [name, content.decode()],
    )


async def test_sign_in_files_versions_trash_storage_map_devices_and_account_deletion(web, stack, http, receipts
                                                                                     ) -> None:
    page, violations = web.page, []
    email = new_email()

    # ---- sign in with the code read from the SMTP sink ---------------------------------------
    await web.open("/")
    await web.heading("Sign in")
    violations += await web.axe("sign-in")
    await web.shot("sign-in")
    await web.sign_in(email)
    cookies = {c["name"]: c for c in await web.context.cookies(web.url)}
    session = cookies["__Host-osmcloud_session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
    visible = await page.evaluate("document.cookie")
    assert "osmcloud_session" not in visible and "__Host-osmcloud_csrf" in visible
    await expect(page.get_by_text("No files here yet")).to_be_visible()
    violations += await web.axe("files-empty")

    # a phone on the same account (the device to log out later), which also buys Pro
    await advance_clock(stack, RESEND_SECONDS + 1)
    phone, _ = await login(GatewayClient(http, stack.gateway_url), stack.smtp_sink_url, email=email,
                           device={"name": "Pixel", "brand": "Google", "model": "Pixel 8", "platform": "android"})
    await buy_pro(stack, receipts, phone)

    # ---- upload by the file chooser, twice (two versions), and by drag and drop ---------------
    rows = page.locator("li.file-row")
    await page.get_by_label("Upload as type").select_option("GPX")
    await page.get_by_test_id("file-chooser").set_input_files(
        files=[{"name": "ride.gpx", "mimeType": "application/gpx+xml", "buffer": RIDE}])
    await expect(page.get_by_text("Uploaded ride.gpx", exact=True).first).to_be_visible()
    await expect(rows.filter(has_text="ride.gpx")).to_have_count(1)
    progress = page.locator(".uploads progress").first
    assert await progress.get_attribute("value") == await progress.get_attribute("max") == str(len(RIDE))
    await page.get_by_test_id("file-chooser").set_input_files(
        files=[{"name": "ride.gpx", "mimeType": "application/gpx+xml", "buffer": RIDE}])
    await expect(page.locator(".uploads li")).to_have_count(1)
    await expect(page.locator(".uploads").get_by_text("Uploaded ride.gpx")).to_be_visible()
    await page.get_by_label("Upload as type").select_option("FAVOURITES")
    await drop_file(page, "favourites.gpx", FAVOURITES)
    await expect(rows.filter(has_text="favourites.gpx")).to_have_count(1)
    await expect(rows).to_have_count(2)
    row = rows.filter(has_text="ride.gpx")
    await expect(row).to_contain_text("GPX")
    await expect(row).to_contain_text("Chromium on Linux")  # the device that wrote it: this browser
    violations += await web.axe("files")
    await web.shot("files")

    # filters and search are part of the URL
    await page.get_by_role("combobox", name=re.compile(r"^Type")).select_option("FAVOURITES")
    await expect(rows).to_have_count(1)
    assert "type=FAVOURITES" in page.url
    await page.get_by_role("combobox", name=re.compile(r"^Type")).select_option("")
    await page.get_by_label("Search by name").fill("rid")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("ride.gpx")
    await page.get_by_label("Search by name").fill("")

    # ---- the file's versions --------------------------------------------------------------------
    await page.get_by_role("link", name="ride.gpx", exact=True).click()
    await web.heading("Versions of ride.gpx")
    await expect(page.locator("table.versions tbody tr")).to_have_count(2)
    await expect(page.get_by_role("link", name="Download")).to_have_count(2)
    violations += await web.axe("versions")
    await web.shot("versions")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download").first.click()
    download = await download_info.value
    assert download.suggested_filename == "ride.gpx"
    assert open(await download.path(), "rb").read() == RIDE

    # ---- the map: the track's line with its statistics, the favourites' markers ----------------
    await page.get_by_role("navigation").get_by_role("link", name="Map").click()
    await web.heading("Map")
    await expect(page.locator("path.track-line")).to_have_count(1)
    await expect(page.locator("path.favourite-marker")).to_have_count(3)
    await expect(page.get_by_test_id("track-distance")).to_have_text("2.22 km")
    await expect(page.get_by_test_id("track-climb")).to_have_text("30 m")
    await expect(page.get_by_test_id("track")).to_contain_text("Evening ride")
    await expect(page.get_by_text("Food (2)")).to_be_visible()
    await expect(page.get_by_text("Family (1)")).to_be_visible()
    fills = await page.locator("path.favourite-marker").evaluate_all("els => els.map(e => e.getAttribute('fill'))")
    assert sorted(fills) == ["#1f77b4", "#ee8800", "#ee8800"]  # the point's own colour, else its group's
    violations += await web.axe("map")
    await web.shot("map")

    # ---- delete -> the trash shows it at once; restore; delete again; empty with confirmation ---
    async def delete_ride() -> None:
        await page.get_by_role("navigation").get_by_role("link", name="Files").click()
        await web.heading("Files")
        await page.get_by_role("button", name="Delete ride.gpx").click()
        dialog = page.get_by_role("dialog")
        await expect(dialog).to_contain_text("Move ride.gpx to the trash?")
        await dialog.get_by_role("button", name="Delete").click()
        await expect(page.get_by_text("Moved ride.gpx to the trash.")).to_be_visible()
        await expect(rows.filter(has_text="ride.gpx")).to_have_count(0)
        await page.get_by_role("navigation").get_by_role("link", name="Trash").click()
        await web.heading("Trash")

    items = page.locator("li.trash-item")
    await delete_ride()
    await expect(items.filter(has_text="ride.gpx")).to_have_count(1)
    await expect(page.get_by_role("heading", level=2)).to_have_text(re.compile(r"\w+ 20\d\d"))  # the month
    violations += await web.axe("trash")
    await web.shot("trash")
    await page.get_by_role("button", name="Restore ride.gpx").click()
    await expect(page.get_by_text("Restored ride.gpx.")).to_be_visible()
    await expect(page.get_by_text("The trash is empty.")).to_be_visible()
    await page.get_by_role("navigation").get_by_role("link", name="Files").click()
    await expect(rows.filter(has_text="ride.gpx")).to_have_count(1)

    await delete_ride()
    await expect(items).to_have_count(1)
    await page.get_by_role("button", name="Empty trash").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("This cannot be undone.")
    violations += await web.axe("trash-confirm")
    await web.shot("trash-empty-confirm", full_page=False)
    await dialog.get_by_role("button", name="Empty trash").click()
    await expect(page.get_by_text("The trash is empty now.")).to_be_visible()
    await expect(items).to_have_count(0)
    assert (await phone.call("GET", "/api/trash")).body["total_items"] == 0

    # ---- storage bars are the server's figures --------------------------------------------------
    await page.get_by_role("navigation").get_by_role("link", name="Storage").click()
    await web.heading("Storage")
    total = page.locator("#storage-total")
    await expect(total).to_be_visible()
    usage = await (await web.context.request.get(web.url + "/api/files/usage")).json()
    assert await total.get_attribute("data-used") == str(usage["used_bytes"]) == str(len(FAVOURITES))
    assert await total.get_attribute("data-total") == str(usage["quota_bytes"])
    assert await page.locator("#storage-my_places").get_attribute("data-used") == str(usage["used_bytes"])
    assert await page.locator("#storage-type-FAVOURITES").get_attribute("data-used") == str(len(FAVOURITES))
    violations += await web.axe("storage")
    await web.shot("storage")
    # delete all data: only after typing the account's e-mail
    await page.get_by_role("button", name="Delete all my data").click()
    dialog = page.get_by_role("dialog")
    confirm = dialog.get_by_role("button", name="Delete all my data")
    await expect(confirm).to_be_disabled()
    await dialog.get_by_label(f"Type {email} to confirm").fill(email)
    await confirm.click()
    await expect(page.get_by_text("All your data in the cloud is deleted.")).to_be_visible()
    await expect(total).to_have_attribute("data-used", "0")
    assert (await phone.call("GET", "/api/files")).body["files"] == []

    # ---- backup types on/off --------------------------------------------------------------------
    await page.get_by_role("navigation").get_by_role("link", name="Backup").click()
    await web.heading("Backup types")
    voice = page.get_by_role("switch", name="VOICE", exact=True)
    await expect(voice).to_be_checked()
    await voice.click()
    await expect(voice).not_to_be_checked()
    switches = (await phone.call("GET", "/api/files/backup-types")).body["types"]
    assert [s["enabled"] for s in switches if s["type"] == "VOICE"] == [False]
    violations += await web.axe("backup")
    await web.shot("backup")
    # "Download backup": the zip the browser saves holds what the phone has just uploaded
    reply = await phone.call("PUT", "/api/files/FAVOURITES/favourites.gpx", data=FAVOURITES)
    assert reply.status == 201, reply
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Download backup").click()
    download = await downloading.value
    assert re.fullmatch(r"osmcloud-backup-\d{4}-\d\d-\d\d\.zip", download.suggested_filename)
    with zipfile.ZipFile(await download.path()) as backup:
        assert backup.read("files/FAVOURITES/favourites.gpx") == FAVOURITES
        assert [f["path"] for f in json.loads(backup.read("manifest.json"))["files"]] == [
            "files/FAVOURITES/favourites.gpx"]

    # ---- plan -------------------------------------------------------------------------------------
    await page.get_by_role("navigation").get_by_role("link", name="Plan").click()
    await web.heading("Plan")
    await expect(page.get_by_test_id("plan-name")).to_have_text("Pro")
    violations += await web.axe("plan")
    await web.shot("plan")

    # ---- devices: log the phone out ----------------------------------------------------------------
    await page.get_by_role("navigation").get_by_role("link", name="Devices").click()
    await web.heading("Devices")
    await expect(page.locator("li.device")).to_have_count(2)
    await expect(page.locator("li.device", has_text="this browser")).to_contain_text("Chromium on Linux")
    violations += await web.axe("devices")
    await web.shot("devices")
    await page.get_by_role("button", name="Log out Pixel").click()
    await page.get_by_role("dialog").get_by_role("button", name="Log out").click()
    await expect(page.get_by_text("Pixel is logged out.")).to_be_visible()
    await expect(page.locator("li.device")).to_have_count(1)
    assert (await phone.call("GET", "/api/files")).status == 401

    # ---- account: delete it with a mailed code ------------------------------------------------------
    await page.get_by_role("navigation").get_by_role("link", name="Account").click()
    await web.heading("Account")
    await expect(page.get_by_text(email, exact=True).last).to_be_visible()
    violations += await web.axe("account")
    await web.shot("account")
    before = await count_mails(http, stack.smtp_sink_url, email)
    await advance_clock(stack, RESEND_SECONDS + 1)
    await page.get_by_role("button", name="Mail me a deletion code").click()
    await expect(page.get_by_label("Deletion code")).to_be_visible()
    code = await read_code(http, stack.smtp_sink_url, email, after=before)
    await page.get_by_label("Deletion code").fill(code)
    await page.get_by_role("button", name="Delete my account for good").click()
    await web.heading("Sign in")
    await expect(page.get_by_text("Your account and all its data are deleted.")).to_be_visible()
    assert (await web.context.request.get(web.url + "/api/auth/account")).status == 401
    assert {c["name"] for c in await web.context.cookies(web.url)}.isdisjoint({"__Host-osmcloud_session"})

    assert violations == [], violations
    assert web.problems == [], web.problems


async def test_sign_out_logs_this_browser_out(web, stack, http) -> None:
    email = new_email()
    await web.open("/")
    await web.heading("Sign in")
    await expect(web.page.get_by_role("status")).to_have_count(0)  # a first visit: no "session ended"
    await web.sign_in(email)
    # the server's refusal is shown as it is: no plan yet, so no upload
    await web.page.get_by_test_id("file-chooser").set_input_files(
        files=[{"name": "ride.gpx", "mimeType": "application/gpx+xml", "buffer": RIDE}])
    alert = web.page.get_by_role("alert")
    await expect(alert).to_contain_text("Upload of ride.gpx failed:")
    reply = await web.context.request.put(web.url + "/api/files/GPX/ride.gpx", data=RIDE,
                                          headers={"X-CSRF-Token": await web.csrf()})
    assert reply.status >= 400
    await expect(alert).to_contain_text((await reply.json())["error"]["message"])
    token_cookie = {c["name"]: c["value"] for c in await web.context.cookies(web.url)}["__Host-osmcloud_session"]
    # the free plan, chosen on the plan screen
    await web.page.get_by_role("navigation").get_by_role("link", name="Plan").click()
    await web.heading("Plan")
    await expect(web.page.get_by_test_id("plan-name")).to_have_text("No plan")
    await web.page.get_by_role("button", name="Activate Start (free)").click()
    await expect(web.page.get_by_test_id("plan-name")).to_have_text("Start (free)")
    await web.page.get_by_role("button", name="Sign out").click()
    await web.heading("Sign in")
    await expect(web.page.get_by_text("You are signed out.")).to_be_visible()
    # the device is gone: its token is refused even when sent again by hand
    async with http.get(web.url + "/api/files", headers={"Authorization": f"Bearer {token_cookie}"}) as reply:
        assert reply.status == 401
    assert web.problems == []


async def test_narrow_screen_dutch_and_keyboard_only(web, stack) -> None:
    page = web.page
    await page.set_viewport_size({"width": 360, "height": 740})
    email = new_email()
    await web.open("/")
    # keyboard only: the language switch, the e-mail form and the code form
    await page.get_by_label("Language").focus()
    await page.keyboard.press("ArrowDown")  # English -> Nederlands
    await web.heading("Aanmelden")
    await page.get_by_label("E-mailadres").focus()
    await page.keyboard.type(email)
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Code uit de e-mail")).to_be_focused()
    code = await read_code(web.http, stack.smtp_sink_url, email)
    await page.keyboard.type(code)
    await page.keyboard.press("Enter")
    await web.heading("Bestanden")
    await expect(page.get_by_text("Hier staan nog geen bestanden.", exact=False)).to_be_visible()
    assert await page.evaluate("document.documentElement.lang") == "nl"
    # nothing wider than the screen
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    violations = await web.axe("files-360-nl")
    await web.shot("files-360-nl")
    # the menu by keyboard: Tab from the heading reaches links; Enter opens the screen
    await page.get_by_role("navigation").get_by_role("link", name="Prullenbak").focus()
    await page.keyboard.press("Enter")
    await web.heading("Prullenbak")
    await expect(page.get_by_text("De prullenbak is leeg.")).to_be_visible()
    violations += await web.axe("trash-360-nl")
    await page.get_by_role("navigation").get_by_role("link", name="Kaart").focus()
    await page.keyboard.press("Enter")
    await web.heading("Kaart")
    await expect(page.get_by_text("Nog geen favorieten of tracks in de cloud.")).to_be_visible()
    violations += await web.axe("map-360-nl")
    await web.shot("map-360-nl")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert violations == [], violations
    assert web.problems == [], web.problems


async def test_a_list_of_10000_files_is_virtualised(web) -> None:
    """The files screen renders only the rows in view: 10,000 files leave a few dozen rows in
    the page, and the last one is reached by scrolling. (The listing is served by the test, so
    the list's own behaviour is measured, not an upload of 10,000 files.)"""
    page = web.page
    await web.sign_in(new_email())
    files = [{"type": "GPX", "name": f"tracks/2024/track-{i:05d}.gpx", "version_id": f"v{i}", "size": 1000 + i,
              "updatetime": 1_700_000_000_000 + i, "device_id": None, "deleted": False, "category": "my_places"}
             for i in range(10_000)]

    async def listing(route):
        await route.fulfill(json={"files": files})
    await page.route(re.compile(r".*/api/files$"), listing)
    await page.reload()
    await web.heading("Files")
    await expect(page.get_by_text("10000 files")).to_be_visible()
    rows = page.locator("li.file-row")
    await expect(rows.first).to_contain_text("track-00000.gpx")
    assert await rows.count() < 60
    started = await page.evaluate("performance.now()")
    await page.locator(".scroller").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    await expect(page.get_by_text("tracks/2024/track-09999.gpx")).to_be_visible()
    elapsed_ms = await page.evaluate("performance.now()") - started
    assert await rows.count() < 60
    assert elapsed_ms < 2000, elapsed_ms
    assert await page.locator("li.file-row").last.get_attribute("aria-setsize") == "10000"
    await page.get_by_label("Search by name").fill("track-0999")
    await expect(page.get_by_text("10 files")).to_be_visible()
    violations = await web.axe("files-10000")
    assert violations == [], violations
