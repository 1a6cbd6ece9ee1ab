"""docs/admin-openapi.yaml lists exactly the admin routes (/admin/api/...) the services serve."""

import re
from pathlib import Path

import yaml
from openapi_spec_validator import validate

from osmcloud_auth.app import build_app as auth_app
from osmcloud_billing.app import build_app as billing_app
from osmcloud_files.app import build_app as files_app
from osmcloud_trash.app import build_app as trash_app

SPEC = Path(__file__).resolve().parents[2] / "docs" / "admin-openapi.yaml"
METHODS = {"get", "put", "post", "delete", "patch"}
SERVICES = ("auth", "files", "trash", "billing")


def _spec():
    return yaml.safe_load(SPEC.read_text())


def documented() -> set[tuple[str, str]]:
    routes = set()
    for path, ops in _spec()["paths"].items():
        for method in ops:
            if method in METHODS:
                for service in (SERVICES if "{service}" in path else ("",)):
                    routes.add((method, path.replace("{service}", service)))
    return routes


def served() -> set[tuple[str, str]]:
    routes = set()
    for build in (auth_app, files_app, trash_app, billing_app):
        for route in build().router.routes():
            path = route.resource.canonical
            if route.method != "HEAD" and path.startswith("/admin/api/"):
                routes.add((route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return routes


def test_admin_spec_is_valid_openapi():
    validate(_spec())


def test_admin_spec_and_services_list_the_same_routes():
    assert served() - documented() == set(), "served but not documented"
    assert documented() - served() == set(), "documented but not served"
