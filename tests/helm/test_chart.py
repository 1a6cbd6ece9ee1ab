"""deploy/helm/osmcloud, checked without a cluster (none can run here):

1. `helm lint` and `helm template` (Helm 4) with the default values, which must refuse to render
   (no default secrets), and with deploy/helm/examples/production-values.yaml (scaled out);
2. every rendered object against the Kubernetes API schemas of the oldest and newest versions
   the chart supports (kubernetes-validate, strict: unknown fields are errors);
3. the project's own rules: probes, requests and limits, non-root pods without privileges,
   one HPA and PDB per workload, NetworkPolicies that let only the gateway (and the documented
   internal callers) in, secrets only from Secrets, topic partitions >= consuming replicas;
4. parity with the rest of the repository: every service of docker-compose.yml is in the chart
   (or named as external), the gateway's config is gateway/default.conf.template byte for
   byte with each of its variables set, and each variable the chart sets is a setting of its
   service.
"""

from __future__ import annotations

import re
import secrets
import tarfile
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "osmcloud"
PRODUCTION_VALUES = ROOT / "deploy" / "helm" / "examples" / "production-values.yaml"

SERVICES = ("auth", "files", "trash", "billing")
COMPONENTS = (*SERVICES, "gateway")
# docker-compose services the chart leaves to operators (docs/kubernetes.md names them)
EXTERNAL_IN_KUBERNETES = {"kafka": "Kafka (Strimzi)", "mongo": "MongoDB replica set (community operator)",
                          "s3": "any S3 API", "mail": "an SMTP relay"}
KUBE_VERSIONS = ("1.25.0", "1.37.0")
PUBLISHED_DEFAULTS = ("change-me", "osmcloud-secret", "osmcloud-sandbox-key", "minioadmin")


def _strong() -> str:
    return secrets.token_hex(24)


@pytest.fixture(scope="module")
def inline_values(tmp_path_factory) -> Path:
    """Secrets given as values (the chart makes the Secret), everything else minimal."""
    values = {
        "secrets": {"gatewaySecret": _strong(), "s3AccessKey": _strong(), "s3SecretKey": _strong(),
                    "extra": {"STORE_KEY": _strong()}},
        "mongo": {"url": "mongodb://osmcloud:pw@mongo-0.mongo,mongo-1.mongo,mongo-2.mongo/?replicaSet=rs0"},
        "kafka": {"bootstrap": "kafka:9092"},
        "s3": {"endpoint": "s3.storage.svc:8333"},
        "smtp": {"host": "relay.mail.svc"},
        "billing": {"secretEnv": {"STORE_VERIFIER_KEY": "STORE_KEY"}},
    }
    path = tmp_path_factory.mktemp("values") / "inline.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _component(obj: dict) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def _deployments(objects: list[dict]) -> dict[str, dict]:
    return {_component(d): d for d in _of_kind(objects, "Deployment")}


def _env(deployment: dict) -> dict[str, dict]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container.get("env", [])}


# ---- 1. helm lint / helm template ------------------------------------------------------------

def test_default_values_refuse_to_render_naming_the_missing_secret(helm):
    result = helm("template", "osmcloud", str(CHART))
    assert result.returncode != 0
    assert "secrets.gatewaySecret is required" in result.stderr
    assert "openssl rand" in result.stderr  # says how to make one


def test_lint_passes_for_the_defaults_and_the_production_values(helm, inline_values):
    # Helm lints in "lint mode", where `required` only warns: the defaults lint clean as a
    # chart, and `helm template`/`install` refuse them (the test above)
    for values in (None, PRODUCTION_VALUES, inline_values):
        result = helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
        assert result.returncode == 0 and "0 chart(s) failed" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("sets, message", [
    (["secrets.s3SecretKey="], "secrets.s3SecretKey is required"),
    (["secrets.gatewaySecret=change-me"], "secrets.gatewaySecret is a published default"),
    (["secrets.s3AccessKey=short"], "secrets.s3AccessKey must be at least 16 characters"),
    (["mongo.url="], "mongo.url is required"),
    (["kafka.bootstrap="], "kafka.bootstrap is required"),
    (["s3.endpoint="], "s3.endpoint is required"),
    (["smtp.host="], "smtp.host is required"),
    (["mongo.urlSecret.name=mongo-conn"], "mongo.urlSecret.key is required"),
    (["kafka.topicPartitions=3"], "kafka.topicPartitions=3 is below 4"),
])
def test_each_missing_or_weak_setting_is_refused_by_name(helm, inline_values, sets, message):
    args = ["template", "osmcloud", str(CHART), "-f", str(inline_values)]
    for s in sets:
        args += ["--set", s]
    result = helm(*args)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_scaled_production_values_render_every_workload(production):
    kinds = Counter(o["kind"] for o in production)
    assert kinds == {"Deployment": 5, "Service": 5, "HorizontalPodAutoscaler": 4, "PodDisruptionBudget": 5,
                     "NetworkPolicy": 6, "ConfigMap": 1, "ServiceAccount": 1, "Ingress": 1}, kinds
    assert set(_deployments(production)) == set(COMPONENTS)


# ---- 2. Kubernetes API schemas ----------------------------------------------------------------

@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_rendered_object_is_valid_for_the_kubernetes_api(production, render, inline_values, kube_version):
    for obj in [*production, *render(inline_values)]:
        try:
            kubernetes_validate.validate(obj, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes {kube_version}: "
                        f"{'.'.join(str(p) for p in exc.path)}: {exc.message}")


# ---- 3. the project's rules -------------------------------------------------------------------

def test_probes_limits_and_unprivileged_pods_everywhere(production):
    for name, deployment in _deployments(production).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
            assert security["runAsNonRoot"] is True
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            ready = "/healthz" if name == "gateway" else "/readyz"  # nginx answers /healthz itself
            assert container["readinessProbe"]["httpGet"]["path"] == ready, name
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name


def test_each_workload_scales_alone_and_has_a_disruption_budget(production, render, inline_values):
    deployments = _deployments(production)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in _of_kind(production, "HorizontalPodAutoscaler")}
    pdbs = {_component(p): p for p in _of_kind(production, "PodDisruptionBudget")}
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if name == "billing":  # autoscaling off in the example: a fixed count
            assert deployment["spec"]["replicas"] == 2 and deployment["metadata"]["name"] not in hpas
        else:
            assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
            assert hpas[deployment["metadata"]["name"]]["spec"]["maxReplicas"] >= 2
    # the defaults autoscale every workload
    defaults = render(inline_values)
    assert len(_of_kind(defaults, "HorizontalPodAutoscaler")) == len(COMPONENTS)


def _consumers() -> set[str]:
    """Services that run a consumer group: their composition registers event handlers."""
    handler = re.compile(r"\.on_(?:event|events|account_deleted)\(")
    return {s for s in SERVICES
            if any(handler.search(p.read_text()) for p in (ROOT / "services" / s / "src").rglob("*.py"))}


def test_topics_have_a_partition_for_every_replica_of_a_consuming_service(production, render, inline_values):
    hpas = {_component(h): h["spec"]["maxReplicas"] for h in _of_kind(production, "HorizontalPodAutoscaler")}
    deployments = _deployments(production)
    consumers = _consumers()
    assert consumers == {"auth", "files", "trash", "billing"}  # each has handlers today
    most = max(hpas.get(name) or deployments[name]["spec"]["replicas"] for name in consumers)
    assert most == 12  # files' HPA in the example
    for name in SERVICES:
        assert int(_env(deployments[name])["KAFKA_TOPIC_PARTITIONS"]["value"]) >= most
    raised = _deployments(render(inline_values, sets=("kafka.topicPartitions=24",)))
    assert _env(raised["files"])["KAFKA_TOPIC_PARTITIONS"]["value"] == "24"
    for name in consumers:  # the chart counts each consumer: scaling any one raises the partitions
        scaled = _deployments(render(inline_values, sets=(f"{name}.autoscaling.maxReplicas=20",)))
        assert _env(scaled["billing"])["KAFKA_TOPIC_PARTITIONS"]["value"] == "20", name


def test_secrets_come_only_from_secrets_and_none_is_a_published_default(production, render, inline_values):
    assert not _of_kind(production, "Secret"), "existingSecret given: the chart must not make one"
    inline = render(inline_values)
    (secret,) = _of_kind(inline, "Secret")
    given = yaml.safe_load(inline_values.read_text())["secrets"]
    assert secret["stringData"]["GATEWAY_SECRET"] == given["gatewaySecret"]
    assert secret["stringData"]["STORE_KEY"] == given["extra"]["STORE_KEY"]
    sensitive = re.compile(r"SECRET|_KEY$|PASSWORD|TOKEN|MONGO_URL")
    for objects in (production, inline):
        for name, deployment in _deployments(objects).items():
            for var, entry in _env(deployment).items():
                if sensitive.search(var):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name}: {var} must come from a Secret"
                assert not any(d in str(entry.get("value", "")) for d in PUBLISHED_DEFAULTS), (name, var)
    billing = _env(_deployments(inline)["billing"])
    assert billing["STORE_VERIFIER_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "STORE_KEY"


def _peers_selecting(rules: list[dict]) -> set[str]:
    return {peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for rule in rules for peer in rule.get("from", rule.get("to", [])) if "podSelector" in peer
            and "app.kubernetes.io/component" in peer["podSelector"].get("matchLabels", {})}


def test_traces_go_to_the_named_collector_and_only_there(production, render, inline_values):
    """otel.endpoint: every service exports there (OTEL_EXPORTER_OTLP_ENDPOINT) and may reach its
    port; without it (the default), no service traces and no egress is opened for it."""
    policies = {p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component"): p
                for p in _of_kind(production, "NetworkPolicy")}
    for name in SERVICES:
        assert _env(_deployments(production)[name])["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == \
            "http://otel-collector.monitoring.svc:4318"
        assert any(port["port"] == 4318 for rule in policies[name]["spec"]["egress"] for port in rule["ports"]), name
    plain = render(inline_values)
    for name in SERVICES:
        assert not any(v.startswith("OTEL_") for v in _env(_deployments(plain)[name])), name


def test_network_policies_deny_by_default_and_admit_only_the_gateway_and_documented_callers(production):
    policies = _of_kind(production, "NetworkPolicy")
    deny = [p for p in policies if not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert len(deny) == 1 and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "app.kubernetes.io/component" not in deny[0]["spec"]["podSelector"]["matchLabels"]  # every pod
    own = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: p for p in policies if p not in deny}
    assert set(own) == set(COMPONENTS)
    callers = _internal_calls()
    for name in SERVICES:
        spec = own[name]["spec"]
        admitted = _peers_selecting(spec["ingress"])
        expected = {"gateway"} | {c for c, callees in callers.items() if name in callees}
        if name == "auth":
            expected.add("auth")  # replicas drop each other's verify caches
        assert admitted == expected, name
        reached = _peers_selecting(spec["egress"])
        assert reached == set(callers[name]) | ({"auth"} if name == "auth" else set()), name
    assert _peers_selecting(own["gateway"]["spec"]["egress"]) == set(SERVICES)
    # the gateway admits only the ingress controller's namespace in the example
    assert own["gateway"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]


# ---- 4. parity with the repository ------------------------------------------------------------

def _settings_fields(service: str) -> set[str]:
    import importlib
    module = importlib.import_module(f"osmcloud_{service}.settings")
    (cls,) = [c for n, c in vars(module).items() if n.endswith("Settings") and n != "ServiceSettings"]
    return {name.upper() for name in cls.model_fields}


def _internal_calls() -> dict[str, set[str]]:
    """Which service calls which, from the settings: a `<callee>_url` field (README "Internal
    calls"); auth's verify_cache_url is its own address for its replicas."""
    calls = {}
    for service in SERVICES:
        urls = {f.removesuffix("_URL").lower() for f in _settings_fields(service) if f.endswith("_URL")}
        calls[service] = urls & set(SERVICES)
    return calls


def test_every_compose_service_is_in_the_chart_or_named_external(production):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    in_chart = set(_deployments(production))
    missing = set(compose) - in_chart - set(EXTERNAL_IN_KUBERNETES)
    assert not missing, (f"docker-compose.yml runs {sorted(missing)} but deploy/helm/osmcloud has no Deployment "
                         "for it: add it to the chart (templates/_helpers.tpl serviceTable) or, if operators "
                         "bring it, to EXTERNAL_IN_KUBERNETES and docs/kubernetes.md")
    assert in_chart <= set(compose), f"the chart runs {sorted(in_chart - set(compose))}, which compose does not"
    built = {name for name, svc in compose.items() if "build" in svc}
    assert built == set(SERVICES), "each service built from the Dockerfile is one of the chart's services"


def test_the_gateway_runs_the_repositorys_template_with_every_variable_set(production):
    template = (ROOT / "gateway" / "default.conf.template").read_text()
    (config,) = _of_kind(production, "ConfigMap")
    assert config["data"]["default.conf.template"] == template, "the chart must carry the template unchanged"
    gateway = _deployments(production)["gateway"]
    variables = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", template))
    assert variables, "no ${VARIABLE} found in the template"
    missing = variables - set(_env(gateway))
    assert not missing, f"the gateway's template uses {sorted(missing)}, which the chart does not set"
    mounts = {m["mountPath"] for m in gateway["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert {"/etc/nginx/templates", "/etc/nginx/conf.d", "/tmp"} <= mounts


def test_every_variable_the_chart_sets_is_a_setting_of_its_service(production, render, inline_values):
    always_allowed = {"POD_IP"}  # only used inside VERIFY_CACHE_URL
    for objects in (production, render(inline_values, sets=("s3.secure=true",))):
        for name in SERVICES:
            env = set(_env(_deployments(objects)[name])) - always_allowed
            unknown = env - _settings_fields(name) - {"STORE_VERIFIER_KEY"}  # the test's own secretEnv
            assert not unknown, f"{name} has no setting {sorted(unknown)}"
    for service, callees in _internal_calls().items():
        env = _env(_deployments(production)[service])
        for callee in callees:
            assert env[f"{callee.upper()}_URL"]["value"].startswith(f"http://osmcloud-{callee}:"), (service, callee)


def test_a_packaged_chart_carries_the_template_content_not_a_link(helm, tmp_path):
    result = helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("osmcloud-*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.getmember("osmcloud/files/default.conf.template")
        assert member.isfile()
        packed = tar.extractfile(member).read().decode()
    assert packed == (ROOT / "gateway" / "default.conf.template").read_text()
