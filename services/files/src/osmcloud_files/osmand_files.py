"""OsmAnd's view of files' versions, free of I/O: the entries and totals of `list-files`,
the answer of `upload-file`, and how files' own refusals become the protocol's codes.

Field names and semantics follow OsmAnd's server (UserdataController / UserdataService:
UserFileNoData, UserFilesResults, ResponseFileStatus)."""

from typing import Any

from osmcloud_common.osmand import MALFORMED_REQUEST, ErrorCode, OsmandError

from .errors import FilesError, Missing, NotAllowed, OverLimit, VersionConflict
from .native_errors import api_error

MB = 1024 * 1024
SIZE_EXCEEDED_PREFIX = "Maximum size of OsmAnd Cloud exceeded "


def file_entry(version: dict[str, Any], user_num: int) -> dict[str, Any]:
    """One version as OsmAnd's `UserFileNoData`: integers throughout; a delete marker has
    filesize and zipSize -1. `id` is the version's change number (unique in the account);
    versions stored before device numbers existed say deviceid 0; a version uploaded through
    the native API has no gzip size, so its zipSize is its size."""
    deleted = bool(version.get("deleted"))
    size = -1 if deleted else int(version["size"])
    gzip_size = version.get("zip_size")
    zip_size = -1 if deleted else int(gzip_size if gzip_size is not None else size)
    return {"userid": user_num, "id": int(version.get("seq") or 0), "deviceid": int(version.get("device_num") or 0),
            "filesize": size, "type": version["type"], "name": version["name"],
            "updatetimems": int(version["updated_ms"]), "clienttimems": int(version.get("client_ms") or 0),
            "zipSize": zip_size}


def parse_types(raw: str | None) -> list[str] | None:
    """`type=GPX,FAVOURITES` → the names; absent or empty → None (every type)."""
    names = [t.strip() for t in (raw or "").split(",") if t.strip()]
    return list(dict.fromkeys(names)) or None


class ListFilesAnswer:
    """The answer of `list-files`, built one version at a time so it can stream: `all_version`
    for each entry of `allFiles` (every version newest first, with allVersions), `newest` for
    each entry of `uniqueFiles` (each file's newest version unless it is a delete marker,
    newest first: the app takes the first entry of a (type, name) as its newest), then
    `totals`. Totals count versions that are not delete markers — sizes of every such version
    with allVersions, of the newest ones only without (as the reference server);
    `totalFileVersions` counts them all either way."""

    def __init__(self, user_num: int, all_versions: bool, maximum_account_size: int) -> None:
        self.user_num, self.all_versions = user_num, all_versions
        self.figures = {"totalZipSize": 0, "totalFileSize": 0, "totalFiles": 0, "totalFileVersions": 0,
                        "maximumAccountSize": int(maximum_account_size), "userid": user_num}

    def all_version(self, version: dict[str, Any]) -> dict[str, Any]:
        entry = file_entry(version, self.user_num)
        if entry["filesize"] >= 0:
            self.figures["totalFileVersions"] += 1
            self.figures["totalZipSize"] += entry["zipSize"]
            self.figures["totalFileSize"] += entry["filesize"]
        return entry

    def newest(self, version: dict[str, Any]) -> dict[str, Any]:
        entry = file_entry(version, self.user_num)
        self.figures["totalFiles"] += 1
        if not self.all_versions:
            self.figures["totalZipSize"] += entry["zipSize"]
            self.figures["totalFileSize"] += entry["filesize"]
        return entry

    def totals(self, versions_without_markers: int | None = None) -> dict[str, Any]:
        """`versions_without_markers`: the count when allFiles was not listed."""
        if versions_without_markers is not None:
            self.figures["totalFileVersions"] = versions_without_markers
        return dict(self.figures)


def list_files_result(versions: list[dict[str, Any]], user_num: int, all_versions: bool,
                      maximum_account_size: int) -> dict[str, Any]:
    """The whole answer of `list-files` from a list of versions (what the streamed answer of
    osmand_compat.py writes piece by piece)."""
    ordered = sorted(versions, key=lambda v: (v["updated_ms"], v.get("seq") or 0), reverse=True)
    answer = ListFilesAnswer(user_num, all_versions, maximum_account_size)
    seen: set[tuple[str, str]] = set()
    unique = []
    for version in ordered:
        key = (version["type"], version["name"])
        if key not in seen and not version.get("deleted"):
            unique.append(answer.newest(version))
        seen.add(key)
    result: dict[str, Any] = {"uniqueFiles": unique}
    if all_versions:
        result["allFiles"] = [answer.all_version(v) for v in ordered]
        return {**answer.totals(), **result}
    return {**answer.totals(sum(1 for v in ordered if not v.get("deleted"))), **result}


def upload_answer(file_type: str, name: str, head: dict[str, Any], zip_size: int) -> dict[str, Any]:
    """OsmAnd's `ResponseFileStatus`; `updatetime` is the version's updatetimems in list-files."""
    return {"filesize": head["size"], "zipfilesize": zip_size, "updatetime": head["updated_ms"],
            "clienttime": head.get("client_ms") or 0, "type": file_type, "name": name, "status": "ok"}


def size_exceeded_message(quota_bytes: int | None, detail: str) -> str:
    """The app shows the figure between the prefix and the first '.' ("… exceeded 5 MB.")."""
    figure = f"{(quota_bytes or 0) // MB} MB"
    return f"{SIZE_EXCEEDED_PREFIX}{figure}. {detail}"


def osmand_error(error: FilesError, quota_bytes: int | None, changed: str) -> OsmandError:
    """files' own refusals in the protocol's terms (the one place /userdata/ maps them): over
    a plan limit (quota, file size, file count) → 108 naming the quota; a type the plan does
    not allow or no plan → 102; a missing file or version → 106; a file changed meanwhile →
    `changed` (the app knows no conflict code: a message asking to retry); other bad input
    → 400 in the protocol's shape."""
    if isinstance(error, VersionConflict):
        return OsmandError(MALFORMED_REQUEST, changed)
    if isinstance(error, OverLimit):
        translated = OsmandError(ErrorCode.SIZE_EXCEEDED, size_exceeded_message(quota_bytes, error.message))
    elif isinstance(error, NotAllowed):
        translated = OsmandError(ErrorCode.NO_VALID_SUBSCRIPTION, error.message)
    elif isinstance(error, Missing):
        translated = OsmandError(ErrorCode.FILE_NOT_AVAILABLE, error.message)
    else:
        translated = OsmandError(MALFORMED_REQUEST, error.message)
    translated.translated_from(api_error(error))  # metrics count it by files' own reason
    return translated
