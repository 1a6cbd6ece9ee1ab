"""Answers schemathesis found wrong (tests/integration/test_schemathesis.py), each pinned on its
own through the gateway: JSON errors and 405 + Allow where nginx answers itself, no route
shadowing another path's methods, strict request types, never a 500 for a malformed body."""

from osmcloud_localstack.client import login, osmand_sign_up


async def test_trace_answers_405_with_allow_and_json(gateway):
    reply = await gateway.call("TRACE", "/api/files/GPX/tracks/a.gpx")
    assert reply.status == 405 and reply.headers["Allow"] == "GET, HEAD, PUT, DELETE", reply
    assert reply.body["error"]["code"] == "method_not_allowed", reply
    reply = await gateway.call("TRACE", "/userdata/list-files")
    assert reply.status == 405 and reply.headers["Allow"] == "GET, HEAD", reply
    reply = await gateway.call("TRACE", "/no/such/path")
    assert reply.status == 404 and reply.body["error"]["code"] == "not_found", reply


async def test_a_request_line_too_long_answers_414_and_a_1024_character_name_fits(stack, gateway):
    me, _ = await login(gateway, stack.smtp_sink_url)
    reply = await me.call("GET", "/api/files/GPX/" + "n" * 1024)
    assert reply.status == 404 and reply.body["error"]["code"] == "file_not_found", reply
    reply = await me.call("GET", "/api/files/GPX/" + "x" * 40_000)
    assert reply.status == 414, reply  # documented: nginx's own page (read before error pages apply)


async def test_an_undeclared_method_under_history_or_types_is_405_not_an_unknown_type(stack, gateway):
    me, _ = await login(gateway, stack.smtp_sink_url)
    for path, allow in (("/api/files/history/GPX/a.gpx", "GET"), ("/api/files/types/GPX", "DELETE")):
        reply = await me.call("PUT", path, data=b"x")
        assert reply.status == 405 and allow in reply.headers["Allow"], (path, reply)


async def test_backup_switch_takes_only_true_or_false(stack, gateway):
    me, _ = await login(gateway, stack.smtp_sink_url)
    for enabled in (0, 1, "yes", None):
        reply = await me.call("PUT", "/api/files/backup-types/GPX", json={"enabled": enabled})
        assert reply.status == 400, (enabled, reply)
    reply = await me.call("PUT", "/api/files/backup-types/GPX", json={"enabled": False})
    assert reply.status == 200 and reply.body["enabled"] is False, reply


async def test_upload_file_with_a_part_header_that_is_no_http_header_is_a_protocol_400(stack, gateway):
    _, device = await osmand_sign_up(gateway, stack.smtp_sink_url)
    body = (b'--b\r\nContent-Disposition: form-data; name="\xc2\x8d%\xc3\xbb\x00"\r\n\r\nfalse\r\n--b--\r\n')
    reply = await gateway.with_token(None).call(
        "POST", "/userdata/upload-file", data=body, headers={"Content-Type": "multipart/form-data; boundary=b"},
        params={"deviceid": device["id"], "accessToken": device["accesstoken"], "name": "a.gpx", "type": "GPX"})
    assert reply.status == 400 and reply.body["error"]["errorCode"] == 400, reply
