"""The gateway's `$osmcloud_allow` map (the Allow header of the 405 nginx answers itself, to
TRACE) names, for every path of docs/openapi.yaml, exactly the methods the file declares
(HEAD wherever GET is: the services answer HEAD for every GET route)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("get", "put", "post", "delete", "patch")


def allow_map() -> list[tuple[str, str]]:
    text = (ROOT / "gateway" / "default.conf.template").read_text()
    block = re.search(r"map \$uri \$osmcloud_allow \{(.*?)\n\}", text, re.S).group(1)
    return re.findall(r'^\s*(\S+)\s+"([^"]*)";', block, re.M)


def allowed(uri: str, entries: list[tuple[str, str]]) -> str:
    """nginx's choice: an exact name first, then the first regex that matches, else default."""
    exact = dict(entries)
    if uri in exact:
        return exact[uri]
    for key, value in entries:
        if key.startswith("~") and re.search(key[1:], uri):
            return value
    return exact["default"]


def sample_uri(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "dir/x.gpx" if m.group(1) == "name" else "x", path)


def test_every_documented_path_allows_exactly_its_methods():
    entries = allow_map()
    paths = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())["paths"]
    wrong = {}
    for path, item in paths.items():
        declared = {m.upper() for m in item if m in METHODS}
        if "GET" in declared:
            declared.add("HEAD")
        got = {m.strip() for m in allowed(sample_uri(path), entries).split(",") if m.strip()}
        if got != declared:
            wrong[path] = (sorted(got), sorted(declared))
    assert wrong == {}, "path: (the map's methods, the file's methods)"


def test_an_unknown_path_has_no_entry():
    assert allowed("/api/nothing-here", allow_map()) == ""
    assert allowed("/somewhere/else", allow_map()) == ""
