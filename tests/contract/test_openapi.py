"""The API reference (docs/openapi.yaml) lists exactly the public routes the services serve."""

import re
from pathlib import Path

import yaml
from openapi_spec_validator import validate

from osmcloud_auth.app import build_app as auth_app
from osmcloud_billing.app import build_app as billing_app
from osmcloud_files.app import build_app as files_app
from osmcloud_trash.app import build_app as trash_app

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch"}


def _spec():
    return yaml.safe_load(SPEC.read_text())


def _served_routes() -> set[tuple[str, str]]:
    routes = set()
    for build in (auth_app, files_app, trash_app, billing_app):
        for route in build().router.routes():
            path = route.resource.canonical
            if route.method == "HEAD" or not path.startswith(("/api/", "/userdata/")):
                continue
            routes.add((route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return routes


def test_spec_is_valid_openapi():
    validate(_spec())


def test_spec_and_services_list_the_same_routes():
    documented = {(m, p) for p, ops in _spec()["paths"].items() for m in ops if m in METHODS}
    served = _served_routes()
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
