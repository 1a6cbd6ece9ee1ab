"""docs/configuration.md's "Service settings" table lists exactly the settings the code reads: every
field of every pydantic-settings class in libs/common and the services, and nothing else."""

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "configuration.md"
SECTION = "## Service settings"
PACKAGES = {  # import name: source directory
    "osmcloud_common": REPO / "libs" / "common" / "src" / "osmcloud_common",
    **{f"osmcloud_{d.name}": d / "src" / f"osmcloud_{d.name}" for d in sorted((REPO / "services").iterdir())
       if (d / "src" / f"osmcloud_{d.name}").is_dir()},
}


def _settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass defined in our packages (the modules that define a class
    deriving from a ...Settings class are imported)."""
    for package, src in PACKAGES.items():
        for path in sorted(src.rglob("*.py")):
            if re.search(r"^class \w+\([\w.]*Settings\b", path.read_text(), re.M):
                module = ".".join((package, *path.relative_to(src).with_suffix("").parts)).removesuffix(".__init__")
                importlib.import_module(module)
    found, todo = [], [BaseSettings]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in PACKAGES:
                found.append(sub)
    return found


def _variables_in_code() -> dict[str, list[str]]:
    """Environment variable → the settings fields that read it ("module.Class.field")."""
    variables: dict[str, list[str]] = {}
    for cls in _settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
            reader = f"{cls.__module__}.{cls.__qualname__}.{name}"
            variables.setdefault((alias or prefix + name).upper(), []).append(reader)
    return variables


def _variables_in_doc() -> dict[str, int]:
    """Variable → line number, from the first column of the "Service settings" table."""
    lines = DOC.read_text().splitlines()
    assert SECTION in lines, f"{DOC.relative_to(REPO)} has no section {SECTION!r}"
    documented: dict[str, int] = {}
    for number, line in enumerate(lines[lines.index(SECTION) + 1:], start=lines.index(SECTION) + 2):
        if line.startswith("## "):
            break
        if line.startswith("|") and not line.startswith("|---"):
            first_column = line.split("|")[1]
            for variable in re.findall(r"`([A-Z][A-Z0-9_]*)`", first_column):
                documented.setdefault(variable, number)
    return documented


def test_the_settings_classes_are_found():
    names = {cls.__name__ for cls in _settings_classes()}
    assert {"ServiceSettings", "AuthSettings", "FilesSettings", "TrashSettings", "BillingSettings"} <= names


def _report(problem: str, fix: str, rows: dict[str, str]) -> str:
    where = f"{DOC.relative_to(REPO)}, section {SECTION!r}"
    return f"{problem} {where} ({fix}):\n" + "\n".join(f"  {v}  ({why})" for v, why in sorted(rows.items()))


def test_every_setting_in_code_has_a_row_in_the_configuration_doc():
    documented = _variables_in_doc()
    missing = {v: "read by " + ", ".join(fields) for v, fields in _variables_in_code().items() if v not in documented}
    assert not missing, _report("settings read by the code but missing from",
                                "add a row: | `VARIABLE` | service | default | meaning |", missing)


def test_every_variable_in_the_configuration_doc_is_read_by_the_code():
    in_code = _variables_in_code()
    stale = {v: f"line {line}" for v, line in _variables_in_doc().items() if v not in in_code}
    assert not stale, _report("variables that no settings class reads in",
                              "remove the row or the variable, or fix its name", stale)
