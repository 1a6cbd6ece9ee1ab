"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

Three layers:
1. the official Compose specification JSON schema (vendored: compose-spec.json, see README.md
   here), applied with `jsonschema` to the file as written;
2. composecheck (infra/tools/composecheck, built by conftest.py): compose-go loads the project
   exactly as `docker compose` does (schema, interpolation, normalization, consistency), and
   BuildKit's Dockerfile front end lints the Dockerfile (the rules of `docker build --check`),
   checks the build targets and that every COPY source survives .dockerignore;
3. this project's own rules, applied to the project as compose-go resolved it: only the
   gateway publishes a port and only on 127.0.0.1, no container names (so `--scale` works),
   health checks everywhere something waits for health, the environment every service needs,
   one gateway secret, the gateway template mounted and fully rendered, data on named volumes.

Every rule also has a test that feeds it a broken copy and expects it to complain, so a rule
that silently stopped checking would be noticed.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.timeout(1800)  # the first run builds composecheck (Go downloads)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
TEMPLATE = ROOT / "gateway" / "default.conf.template"
TEMPLATE_TARGET = "/etc/nginx/templates/default.conf.template"

GATEWAY = "gateway"
APP_SERVICES = ("auth", "files", "trash", "billing")
DATA_SERVICES = ("kafka", "mongo", "s3")
# What each service reads (docs/configuration.md); each name is also checked to be a field
# of the service's settings, so a renamed setting cannot leave compose configuring nothing.
COMMON_ENV = ("HTTP_HOST", "HTTP_PORT", "MONGO_URL", "MONGO_DB", "KAFKA_BOOTSTRAP",
              "KAFKA_TOPIC_PREFIX", "GATEWAY_SECRET", "TEST_CLOCK", "LOG_LEVEL")
EXTRA_ENV = {
    "auth": ("SMTP_HOST", "SMTP_PORT", "BILLING_URL"),
    "files": ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET", "S3_SECURE", "TRASH_URL"),
    "trash": ("FILES_URL", "AUTH_URL"),
    "billing": ("FILES_URL",),
}
# The only image the Dockerfile may pull (its PYTHON_IMAGE default); anything else means a
# COPY --from or FROM names no stage.
DOCKERFILE_IMAGES = ["docker.io/library/python:3.11-slim"]


def required_env(service: str) -> tuple[str, ...]:
    return COMMON_ENV + EXTRA_ENV.get(service, ())


# ---------------------------------------------------------------------------------------------
# rules: each takes the resolved project (compose-go's JSON) and returns a list of problems
# ---------------------------------------------------------------------------------------------

def services(project: dict) -> dict:
    return project.get("services") or {}


def env(project: dict, name: str) -> dict:
    return {k: ("" if v is None else str(v)) for k, v in (services(project)[name].get("environment") or {}).items()}


def has_healthcheck(svc: dict) -> bool:
    hc = svc.get("healthcheck") or {}
    test = hc.get("test") or []
    return bool(test) and not hc.get("disable") and test != ["NONE"]


def host_port(value: str) -> tuple[str, str]:
    host, _, port = value.rpartition(":")
    return host, port


def rule_ports(project: dict) -> list[str]:
    problems = []
    for name, svc in services(project).items():
        ports = svc.get("ports") or []
        if svc.get("network_mode") == "host":
            problems.append(f"{name}: network_mode host bypasses the gateway")
        if name != GATEWAY:
            if ports:
                problems.append(f"{name}: publishes ports {ports}; only the gateway may")
            continue
        if not ports:
            problems.append(f"{name}: publishes no port")
        for p in ports:
            if p.get("host_ip") != "127.0.0.1":
                problems.append(f"{name}: port {p} is not bound to 127.0.0.1")
    return problems


def rule_no_fixed_names(project: dict) -> list[str]:
    return [f"{name}: has container_name {svc['container_name']!r}; `--scale` needs none"
            for name, svc in services(project).items() if svc.get("container_name")]


def rule_restart(project: dict) -> list[str]:
    """Every container comes back after a crash, as the local stack's supervisor brings back its
    processes (docs/operations.md "Faults and restarts"); `docker compose stop` still stops it."""
    return [f"{name}: restart is {svc.get('restart')!r}, not unless-stopped (a crashed container would stay down)"
            for name, svc in services(project).items() if svc.get("restart") != "unless-stopped"]


def rule_depends_on(project: dict) -> list[str]:
    problems = []
    svcs = services(project)
    for name, svc in svcs.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            if dep not in svcs:
                problems.append(f"{name}: depends on {dep}, which is not a service")
            elif (spec or {}).get("condition") == "service_healthy" and not has_healthcheck(svcs[dep]):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
    return problems


def rule_app_services(project: dict) -> list[str]:
    problems = []
    svcs = services(project)
    secrets = {}
    dbs: dict[str, str] = {}
    for name in APP_SERVICES:
        if name not in svcs:
            problems.append(f"{name}: missing")
            continue
        svc, e = svcs[name], env(project, name)
        build = svc.get("build") or {}
        if not build:
            problems.append(f"{name}: not built from the repository")
        else:
            if Path(build.get("context", "")) != ROOT:
                problems.append(f"{name}: build context {build.get('context')} is not the repository root")
            if build.get("target") != name:
                problems.append(f"{name}: builds target {build.get('target')!r}, not {name!r}")
        if not has_healthcheck(svc):
            problems.append(f"{name}: no healthcheck")
        for var in required_env(name):
            if var not in e:
                problems.append(f"{name}: environment lacks {var}")
        if e.get("HTTP_HOST") not in (None, "0.0.0.0"):
            problems.append(f"{name}: HTTP_HOST={e['HTTP_HOST']} (containers must listen on 0.0.0.0)")
        if e.get("TEST_CLOCK", "false").lower() not in ("false", "0", "no", "off"):
            problems.append(f"{name}: TEST_CLOCK={e['TEST_CLOCK']}; the test clock is never on in compose")
        if "MONGO_DB" in e:
            if e["MONGO_DB"] in dbs:
                problems.append(f"{name}: shares database {e['MONGO_DB']} with {dbs[e['MONGO_DB']]}")
            dbs[e["MONGO_DB"]] = name
        secrets[name] = e.get("GATEWAY_SECRET")
        # Endpoints point at services of this project, on the ports those services serve.
        for var in ("KAFKA_BOOTSTRAP", "S3_ENDPOINT"):
            if var in e and host_port(e[var])[0] not in svcs:
                problems.append(f"{name}: {var}={e[var]} names no service")
        if "MONGO_URL" in e:
            host = re.sub(r"^mongodb://(?:[^@/]*@)?([^:/,]+).*$", r"\1", e["MONGO_URL"])
            if host not in svcs:
                problems.append(f"{name}: MONGO_URL={e['MONGO_URL']} names no service")
        if "SMTP_HOST" in e and e["SMTP_HOST"] not in svcs:
            problems.append(f"{name}: SMTP_HOST={e['SMTP_HOST']} names no service")
    gateway_secret = env(project, GATEWAY).get("GATEWAY_SECRET") if GATEWAY in svcs else None
    for name, secret in secrets.items():
        if not secret:
            problems.append(f"{name}: GATEWAY_SECRET is empty; the service would accept direct calls")
        elif secret != gateway_secret:
            problems.append(f"{name}: GATEWAY_SECRET differs from the gateway's")
    return problems


def rule_infrastructure_wiring(project: dict) -> list[str]:
    """Client settings agree with the servers' own configuration."""
    problems = []
    svcs = services(project)
    if "kafka" in svcs:
        advertised = env(project, "kafka").get("KAFKA_ADVERTISED_LISTENERS", "")
        endpoints = {re.sub(r"^[A-Z_]+://", "", a) for a in advertised.split(",")}
        for name in APP_SERVICES:
            boot = env(project, name).get("KAFKA_BOOTSTRAP") if name in svcs else None
            if boot and not set(boot.split(",")) & endpoints:
                problems.append(f"{name}: KAFKA_BOOTSTRAP={boot} is none of kafka's advertised listeners {advertised}")
    if "s3" in svcs and "files" in svcs:
        s3, files = env(project, "s3"), env(project, "files")
        for client, server in (("S3_ACCESS_KEY", "ROOT_ACCESS_KEY"), ("S3_SECRET_KEY", "ROOT_SECRET_KEY")):
            if files.get(client) != s3.get(server):
                problems.append(f"files: {client} differs from s3's {server}")
        command = svcs["s3"].get("command") or []
        port = command[command.index("--port") + 1] if "--port" in command else ":7070"
        if "S3_ENDPOINT" in files and host_port(files["S3_ENDPOINT"])[1] != host_port(port)[1]:
            problems.append(f"files: S3_ENDPOINT={files['S3_ENDPOINT']} but s3 listens on {port}")
    return problems


def rule_data_volumes(project: dict) -> list[str]:
    problems = []
    svcs = services(project)
    declared = set((project.get("volumes") or {}).keys())
    for name in DATA_SERVICES:
        if name not in svcs:
            problems.append(f"{name}: missing")
            continue
        mounts = [v for v in svcs[name].get("volumes") or [] if v.get("type") == "volume"]
        targets = {v.get("target") for v in mounts}
        if not mounts:
            problems.append(f"{name}: keeps its data in no named volume")
        for v in mounts:
            if v.get("source") not in declared:
                problems.append(f"{name}: volume {v.get('source')} is not declared")
        if name == "kafka":
            log_dirs = env(project, "kafka").get("KAFKA_LOG_DIRS")
            if log_dirs not in targets:
                problems.append(f"kafka: KAFKA_LOG_DIRS={log_dirs} is not on a volume")
        if name == "s3":
            command = svcs[name].get("command") or []
            if "posix" not in command:
                problems.append("s3: not the posix backend")
                continue
            args = command[command.index("posix") + 1:]
            if "--sidecar" not in args:
                problems.append("s3: runs without --sidecar (multipart uploads need metadata)")
                continue
            meta = args[args.index("--sidecar") + 1]
            root = args[-1]
            for path in (meta, root):
                if path not in targets:
                    problems.append(f"s3: {path} is not on a volume")
            if meta.startswith(root) or root.startswith(meta):
                problems.append(f"s3: {meta} and {root}: one is a prefix of the other (versitygw refuses that)")
    return problems


def template_variables(text: str) -> set[str]:
    """${NAME} references in an nginx template (what the nginx image's envsubst replaces)."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def rule_gateway(project: dict, template_text: str | None) -> list[str]:
    problems = []
    svcs = services(project)
    if GATEWAY not in svcs:
        return [f"{GATEWAY}: missing"]
    gw, e = svcs[GATEWAY], env(project, GATEWAY)
    if not str(gw.get("image", "")).startswith("nginx:"):
        problems.append(f"{GATEWAY}: image {gw.get('image')} is not the official nginx image")
    mounts = [v for v in gw.get("volumes") or [] if v.get("target") == TEMPLATE_TARGET]
    if not mounts:
        problems.append(f"{GATEWAY}: does not mount the template at {TEMPLATE_TARGET}")
    for v in mounts:
        if v.get("type") != "bind" or Path(v.get("source", "")) != TEMPLATE:
            problems.append(f"{GATEWAY}: {TEMPLATE_TARGET} comes from {v.get('source')}, not {TEMPLATE}")
        if not v.get("read_only"):
            problems.append(f"{GATEWAY}: template mount is writable")
    for name in APP_SERVICES:
        var = f"{name.upper()}_UPSTREAM"
        if name not in svcs:
            continue
        want = f"{name}:{env(project, name).get('HTTP_PORT')}"
        if e.get(var) != want:
            problems.append(f"{GATEWAY}: {var}={e.get(var)}, but {name} listens on {want}")
        cond = ((gw.get("depends_on") or {}).get(name) or {}).get("condition")
        if cond != "service_healthy":
            problems.append(f"{GATEWAY}: does not wait for {name} to be healthy")
    listen = e.get("GATEWAY_LISTEN", "")
    targets = {str(p.get("target")) for p in gw.get("ports") or []}
    if host_port(listen)[1] not in targets:
        problems.append(f"{GATEWAY}: listens on {listen!r} but publishes container ports {sorted(targets)}")
    if not has_healthcheck(gw):
        problems.append(f"{GATEWAY}: no healthcheck")
    if template_text is None:
        problems.append(f"{TEMPLATE} does not exist (the gateway container would not start)")
    else:
        missing = sorted(template_variables(template_text) - set(e))
        if missing:
            problems.append(f"{GATEWAY}: template uses {missing}, not set in its environment "
                            "(envsubst would leave them in nginx's config)")
        # The health check asks nginx for a URL the template serves, on the port it listens on.
        for arg in (gw.get("healthcheck") or {}).get("test") or []:
            m = re.search(r"http://[^/:]+:(\d+)(/\S*)", arg)
            if not m:
                continue
            if m.group(1) != host_port(listen)[1]:
                problems.append(f"{GATEWAY}: healthcheck asks port {m.group(1)}, nginx listens on {listen}")
            if not re.search(rf"location\s+=?\s*{re.escape(m.group(2))}\s*{{", template_text):
                problems.append(f"{GATEWAY}: healthcheck asks {m.group(2)}, which the template has no location for")
    return problems


def stage_map(dockerfile: dict) -> dict[str, dict]:
    return {s["name"].lower(): s for s in dockerfile["stages"] if s["name"]}


def stage_sources(stages: dict[str, dict], name: str, seen: set[str] | None = None) -> set[str]:
    """Context paths a stage ends up with: its own COPYs, its base stage's and those of the
    stages it copies from."""
    seen = seen if seen is not None else set()
    if name in seen or name not in stages:
        return set()
    seen.add(name)
    st = stages[name]
    out = set(st.get("context_sources") or [])
    for other in [st["base"].lower(), *[f.lower() for f in st.get("copies_from") or []]]:
        out |= stage_sources(stages, other, seen)
    return out


def rule_images(project: dict, dockerfile: dict) -> list[str]:
    """What each app target runs, as the Dockerfile defines it."""
    problems = []
    stages = stage_map(dockerfile)
    if dockerfile.get("images") != DOCKERFILE_IMAGES:
        problems.append(f"Dockerfile pulls {dockerfile.get('images')}, expected only {DOCKERFILE_IMAGES} "
                        "(a COPY --from or FROM that names no stage?)")
    for name in APP_SERVICES:
        st = stages.get(name)
        if st is None:
            problems.append(f"Dockerfile: no stage {name!r}")
            continue
        want = ["python", "-m", f"osmcloud_{name}"]
        if st["cmd"] != want or st["cmd_shell_form"] or st["entrypoint"]:
            problems.append(f"Dockerfile {name}: runs {st['entrypoint'] or ''} {st['cmd']}, not {want} (exec form)")
        if st["user"].split(":")[0] in ("", "root", "0"):
            problems.append(f"Dockerfile {name}: runs as root")
        if not st["healthcheck"] or st["healthcheck"][0] == "NONE":
            problems.append(f"Dockerfile {name}: no HEALTHCHECK")
        port = env(project, name).get("HTTP_PORT") if name in services(project) else None
        if port and st["env"].get("HTTP_PORT") != port:
            problems.append(f"Dockerfile {name}: HTTP_PORT={st['env'].get('HTTP_PORT')}, compose says {port}")
        if port and port not in [p.split("/")[0] for p in st["expose"]]:
            problems.append(f"Dockerfile {name}: does not EXPOSE {port}")
        sources = stage_sources(stages, name)
        for path in (f"services/{name}/src", "libs/common/src"):
            if path not in sources:
                problems.append(f"Dockerfile {name}: never copies {path}")
    return problems


def workspace_members() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(data["tool"]["uv"]["workspace"]["members"])


def rule_workspace_manifests(dockerfile: dict, members: list[str]) -> list[str]:
    """uv reads every workspace member's pyproject.toml even to install one of them."""
    sources = set()
    for st in dockerfile["stages"]:
        sources |= set(st.get("context_sources") or [])
    need = ["pyproject.toml", "uv.lock", *[f"{m}/pyproject.toml" for m in members]]
    return [f"Dockerfile never copies {path} (uv sync needs it)" for path in need if path not in sources]


def all_problems(report: dict, template_text: str | None, members: list[str]) -> list[str]:
    project, dockerfile = report["project"], report["dockerfiles"][0]
    return (rule_ports(project) + rule_no_fixed_names(project) + rule_restart(project) + rule_depends_on(project)
            + rule_app_services(project) + rule_infrastructure_wiring(project)
            + rule_data_volumes(project) + rule_gateway(project, template_text)
            + rule_images(project, dockerfile) + rule_workspace_manifests(dockerfile, members))


# ---------------------------------------------------------------------------------------------
# 1. the Compose specification schema, on the file as written
# ---------------------------------------------------------------------------------------------

def schema_errors(document: dict) -> list[str]:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))]


def test_compose_file_conforms_to_the_compose_specification_schema():
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert schema_errors(document) == []


def test_schema_check_rejects_what_compose_rejects():
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    broken = copy.deepcopy(document)
    broken["services"]["files"]["restart_policy"] = "always"  # not a Compose key
    broken["services"]["gateway"]["ports"] = "8080:8080"       # must be a list
    errors = schema_errors(broken)
    assert any("restart_policy" in e for e in errors), errors
    assert any(e.startswith("services/gateway/ports") for e in errors), errors


def test_vendored_schema_is_compose_go_s(go_module_dir):
    """tests/compose/compose-spec.json is byte for byte the schema of the compose-go version
    composecheck is built with (so both checks use one specification)."""
    upstream = go_module_dir("github.com/compose-spec/compose-go/v2") / "schema" / "compose-spec.json"
    assert SCHEMA_FILE.read_bytes() == upstream.read_bytes(), (
        f"refresh it: cp {upstream} {SCHEMA_FILE} (and its version in tests/compose/README.md)")


# ---------------------------------------------------------------------------------------------
# 2. compose-go and BuildKit
# ---------------------------------------------------------------------------------------------

def test_compose_go_and_buildkit_accept_the_project(checked):
    # The `checked` fixture fails with composecheck's messages when anything is rejected.
    assert set(services(checked["project"])) == {*APP_SERVICES, *DATA_SERVICES, "mail", GATEWAY}
    assert checked["dockerfiles"][0]["path"] == "Dockerfile"
    assert checked["dockerfiles"][0]["targets"] == sorted(APP_SERVICES)


def test_gateway_port_follows_GATEWAY_PORT_and_stays_on_loopback(run_check):
    rc, report, problems = run_check(ROOT, {"GATEWAY_PORT": "18080"})
    assert rc == 0, problems
    ports = report["project"]["services"][GATEWAY]["ports"]
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in ports] == [("127.0.0.1", "18080", 8080)]


def test_secrets_come_from_the_environment(run_check):
    rc, report, problems = run_check(
        ROOT, {"GATEWAY_SECRET": "s3cr3t", "S3_ACCESS_KEY": "ak", "S3_SECRET_KEY": "sk"})
    assert rc == 0, problems
    project = report["project"]
    assert {env(project, n)["GATEWAY_SECRET"] for n in (*APP_SERVICES, GATEWAY)} == {"s3cr3t"}
    assert (env(project, "files")["S3_ACCESS_KEY"], env(project, "s3")["ROOT_ACCESS_KEY"]) == ("ak", "ak")
    assert (env(project, "files")["S3_SECRET_KEY"], env(project, "s3")["ROOT_SECRET_KEY"]) == ("sk", "sk")
    assert rule_app_services(project) == [] and rule_infrastructure_wiring(project) == []


def test_compose_refuses_to_start_without_each_secret(run_check):
    """No default secret: without GATEWAY_SECRET, S3_ACCESS_KEY or S3_SECRET_KEY compose stops
    and names the variable (the services themselves also refuse published or short values)."""
    for missing in ("GATEWAY_SECRET", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        others = {k: v for k, v in {"GATEWAY_SECRET": "g" * 32, "S3_ACCESS_KEY": "ak-ak-ak",
                                    "S3_SECRET_KEY": "s" * 32}.items() if k != missing}
        rc, _, problems = run_check(ROOT, others, secrets=False)
        assert rc != 0 and any(missing in line for line in problems), (missing, problems)


def test_billing_never_runs_the_sandbox_store_in_compose(checked):
    assert env(checked["project"], "billing").get("SANDBOX_STORE") == "false"
    assert "SANDBOX_RECEIPT_KEY" not in env(checked["project"], "billing")


def _context_copy(report: dict, dest: Path) -> None:
    """A minimal project directory: the compose file, Dockerfile, .dockerignore, gateway
    template, and a stand-in for every path the Dockerfile copies from the context."""
    for name in ("docker-compose.yml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, dest / name)
    (dest / "gateway").mkdir()
    (dest / "gateway" / "default.conf.template").write_text("# stand-in\n")
    for st in report["dockerfiles"][0]["stages"]:
        for src in st.get("context_sources") or []:
            target = dest / src
            if (ROOT / src).is_dir():
                (target / "pkg").mkdir(parents=True, exist_ok=True)
                (target / "pkg" / "__init__.py").write_text("")
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("")


def _edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: the validator test needs updating"
    path.write_text(text.replace(old, new, count))


VALIDATOR_CASES = {
    # Compose schema (compose-go validates each file against the specification)
    "unknown service key": ("docker-compose.yml", "  trash:\n", "  trash:\n    restart_policy: always\n",
                            "restart_policy"),
    # consistency: a dependency on a service that does not exist
    "undefined dependency": ("docker-compose.yml", "    depends_on: *service-depends\n",
                             "    depends_on:\n      nosuch:\n        condition: service_started\n", "nosuch"),
    # interpolation syntax
    "bad interpolation": ("docker-compose.yml", "${LOG_LEVEL:-info}", "${LOG_LEVEL:-info", "LOG_LEVEL"),
    # build target that is no stage of the Dockerfile
    "unknown target": ("docker-compose.yml", "target: billing", "target: biling", "biling"),
    # BuildKit lint: shell-form CMD
    "shell-form CMD": ("Dockerfile", 'CMD ["python", "-m", "osmcloud_trash"]', "CMD python -m osmcloud_trash",
                       "JSONArgsRecommended"),
    # BuildKit lint: undefined variable
    "undefined variable": ("Dockerfile", "PATH=/app/.venv/bin:$PATH", "PATH=/app/.venv/bin:$PAHT", "UndefinedVar"),
    # BuildKit: malformed instruction
    "bad instruction": ("Dockerfile", "WORKDIR /app\n", "WORKDIR\n", "WORKDIR"),
    # COPY of something the context does not have
    "missing COPY source": ("Dockerfile", "COPY services/files/src services/files/src",
                            "COPY services/file/src services/files/src", "services/file/src"),
    # COPY of something .dockerignore drops
    "ignored COPY source": (".dockerignore", "**/__pycache__\n", "**/__pycache__\nlibs/common/src\n",
                            "libs/common/src"),
}


@pytest.mark.parametrize("case", VALIDATOR_CASES)
def test_composecheck_rejects_a_broken_project(run_check, checked, tmp_path, case):
    _context_copy(checked, tmp_path)
    rc, _, problems = run_check(tmp_path)
    assert rc == 0 and not problems, f"the unbroken copy should pass: {problems}"
    file, old, new, expected = VALIDATOR_CASES[case]
    _edit(tmp_path / file, old, new)
    rc, _, problems = run_check(tmp_path)
    assert rc != 0, f"{case}: composecheck accepted it"
    assert any(expected in p for p in problems), problems


def test_composecheck_reports_a_copy_from_an_unknown_stage(run_check, checked, tmp_path):
    _context_copy(checked, tmp_path)
    _edit(tmp_path / "Dockerfile", "COPY --from=build-trash", "COPY --from=build-trahs")
    rc, report, problems = run_check(tmp_path)
    assert rc == 0, problems  # BuildKit would try to pull it; composecheck reports it ...
    assert any("build-trahs" in p for p in rule_images(report["project"], report["dockerfiles"][0]))  # ... we refuse it


# ---------------------------------------------------------------------------------------------
# 3. this project's rules
# ---------------------------------------------------------------------------------------------

def template_text() -> str | None:
    return TEMPLATE.read_text() if TEMPLATE.is_file() else None


def test_only_the_gateway_publishes_a_port_and_only_on_loopback(checked):
    assert rule_ports(checked["project"]) == []


def test_no_fixed_container_names_so_services_scale(checked):
    assert rule_no_fixed_names(checked["project"]) == []
    assert "container_name" not in COMPOSE_FILE.read_text()


def test_every_service_restarts_unless_stopped(checked):
    assert rule_restart(checked["project"]) == []


def test_every_dependency_exists_and_every_awaited_health_is_checked(checked):
    assert rule_depends_on(checked["project"]) == []


def test_app_services_are_built_here_checked_and_configured(checked):
    assert rule_app_services(checked["project"]) == []


def test_clients_agree_with_the_servers(checked):
    assert rule_infrastructure_wiring(checked["project"]) == []


def test_data_lives_on_named_volumes(checked):
    assert rule_data_volumes(checked["project"]) == []


def test_gateway_mounts_the_shared_template_and_sets_all_its_variables(checked):
    assert rule_gateway(checked["project"], template_text()) == []


def test_each_image_runs_its_service_unprivileged(checked):
    assert rule_images(checked["project"], checked["dockerfiles"][0]) == []


def test_dockerfile_copies_every_workspace_manifest(checked):
    assert rule_workspace_manifests(checked["dockerfiles"][0], workspace_members()) == []


def settings_fields(path: Path) -> set[str]:
    """Annotated field names of the classes in a settings module (read, not imported)."""
    fields = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields.add(item.target.id)
    return fields


def test_required_variables_are_settings_the_services_read():
    common = ROOT / "libs" / "common" / "src" / "osmcloud_common" / "settings.py"
    assert common.is_file(), f"{common} is missing"
    for name in APP_SERVICES:
        own = ROOT / "services" / name / "src" / f"osmcloud_{name}" / "settings.py"
        fields = settings_fields(common) | (settings_fields(own) if own.is_file() else set())
        unknown = [v for v in required_env(name) if v.lower() not in fields]
        assert unknown == [], f"{name}: compose sets {unknown}, which its settings do not read"


# Each rule, fed a broken project, must complain.
def _mutations():
    def drop(path):
        def f(p):
            *parents, last = path
            node = p
            for key in parents:
                node = node[key]
            del node[last]
        return f

    def put(path, value):
        def f(p):
            *parents, last = path
            node = p
            for key in parents:
                node = node[key]
            node[last] = value
        return f

    S = "services"
    return {
        "app publishes a port": (put([S, "files", "ports"],
                                     [{"host_ip": "127.0.0.1", "target": 8082, "published": "8082"}]),
                                 "files: publishes"),
        "gateway on all interfaces": (put([S, GATEWAY, "ports", 0, "host_ip"], ""), "not bound to 127.0.0.1"),
        "container name": (put([S, "files", "container_name"], "files"), "container_name"),
        "no restart": (drop([S, "kafka", "restart"]), "kafka: restart is None"),
        "restart always off": (put([S, "files", "restart"], "no"), "files: restart is 'no'"),
        "healthcheck disabled": (put([S, "trash", "healthcheck"], {"disable": True}), "trash: no healthcheck"),
        "awaited health unchecked": (drop([S, "mongo", "healthcheck"]), "mongo has no healthcheck"),
        "missing variable": (drop([S, "auth", "environment", "SMTP_HOST"]), "auth: environment lacks SMTP_HOST"),
        "loopback listener": (put([S, "billing", "environment", "HTTP_HOST"], "127.0.0.1"), "HTTP_HOST"),
        "test clock on": (put([S, "files", "environment", "TEST_CLOCK"], "true"), "TEST_CLOCK"),
        "shared database": (put([S, "trash", "environment", "MONGO_DB"], "osmcloud_files"), "shares database"),
        "secret mismatch": (put([S, "billing", "environment", "GATEWAY_SECRET"], "other"), "differs"),
        "kafka elsewhere": (put([S, "auth", "environment", "KAFKA_BOOTSTRAP"], "broker:9092"), "KAFKA_BOOTSTRAP"),
        "s3 key mismatch": (put([S, "files", "environment", "S3_SECRET_KEY"], "x"), "S3_SECRET_KEY differs"),
        "not built": (drop([S, "files", "build"]), "files: not built"),
        "wrong target": (put([S, "trash", "build", "target"], "auth"), "builds target"),
        "kafka data on no volume": (put([S, "kafka", "environment", "KAFKA_LOG_DIRS"], "/tmp/kafka"), "KAFKA_LOG_DIRS"),
        "s3 without sidecar": (put([S, "s3", "command"], ["posix", "/var/lib/versitygw/data"]), "--sidecar"),
        "wrong upstream": (put([S, GATEWAY, "environment", "FILES_UPSTREAM"], "files:9999"), "FILES_UPSTREAM"),
        "template not mounted": (put([S, GATEWAY, "volumes"], []), "does not mount the template"),
        "gateway does not wait": (drop([S, GATEWAY, "depends_on", "billing"]), "does not wait for billing"),
        "template variable unset": (drop([S, GATEWAY, "environment", "GATEWAY_SECRET"]),
                                    "template uses ['GATEWAY_SECRET']"),
        "gateway health elsewhere": (put([S, GATEWAY, "healthcheck", "test"],
                                         ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/ping"]), "/ping"),
        "dependency on nothing": (put([S, "auth", "depends_on", "smtp"], {"condition": "service_started"}),
                                  "smtp, which is not a service"),
    }


@pytest.mark.parametrize("case", _mutations())
def test_rules_catch_a_broken_project(checked, case):
    mutate, expected = _mutations()[case]
    report = copy.deepcopy(checked)
    mutate(report["project"])
    template = "server { listen ${GATEWAY_LISTEN}; set $x ${GATEWAY_SECRET}; location = /healthz { return 200; } }"
    problems = all_problems(report, template, workspace_members())
    assert any(expected in p for p in problems), problems


def test_rules_catch_a_broken_dockerfile(checked):
    report = copy.deepcopy(checked)
    stages = stage_map(report["dockerfiles"][0])
    stages["auth"]["cmd"] = ["python", "-m", "osmcloud_files"]
    stages["files"]["user"] = "root"
    stages["trash"]["healthcheck"] = []
    stages["billing"]["env"]["HTTP_PORT"] = "9000"
    for st in report["dockerfiles"][0]["stages"]:
        st["context_sources"] = [s for s in st.get("context_sources") or [] if s != "infra/localstack/pyproject.toml"]
    problems = (rule_images(report["project"], report["dockerfiles"][0])
                + rule_workspace_manifests(report["dockerfiles"][0], workspace_members()))
    for expected in ("auth: runs", "files: runs as root", "trash: no HEALTHCHECK", "billing: HTTP_PORT=9000",
                     "infra/localstack/pyproject.toml"):
        assert any(expected in p for p in problems), (expected, problems)
