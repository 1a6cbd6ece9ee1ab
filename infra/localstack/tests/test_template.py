"""Rendering the shared gateway template: only the known ${NAME}s are replaced."""

import shutil
import subprocess
from pathlib import Path

import pytest

from osmcloud_localstack.gateway import TEMPLATE_VARIABLES, render_template, template_path, write_gateway_config
from osmcloud_localstack.paths import repo_root

VALUES = {
    "AUTH_UPSTREAM": "127.0.0.1:1",
    "FILES_UPSTREAM": "127.0.0.1:2",
    "TRASH_UPSTREAM": "127.0.0.1:3",
    "BILLING_UPSTREAM": "127.0.0.1:4",
    "S3_UPSTREAM": "127.0.0.1:6",
    "GATEWAY_LISTEN": "127.0.0.1:5",
    "GATEWAY_SECRET": "s3cr3t",
    "GATEWAY_ACCESS_LOG": "/dev/null",
    "GATEWAY_TRUSTED_PROXIES_DIR": "/nonexistent",
    "WEB_ROOT": "/srv/web",
}


def test_replaces_known_names_only() -> None:
    text = 'server ${AUTH_UPSTREAM}; set $x $request_id; ${UNKNOWN} $GATEWAY_SECRET "${GATEWAY_SECRET}" ${ HOME }'
    out = render_template(text, VALUES)
    assert out == 'server 127.0.0.1:1; set $x $request_id; ${UNKNOWN} $GATEWAY_SECRET "s3cr3t" ${ HOME }'


def test_extra_values_that_are_not_known_are_ignored() -> None:
    assert render_template("${PATH} ${GATEWAY_LISTEN}", {**VALUES, "PATH": "/bin"}) == "${PATH} 127.0.0.1:5"


def test_missing_known_value_is_an_error() -> None:
    with pytest.raises(KeyError, match="GATEWAY_SECRET"):
        render_template("${GATEWAY_SECRET}", {"AUTH_UPSTREAM": "x"})


@pytest.mark.parametrize("bad", ['a"b', "a;b", "a\nb"])
def test_values_cannot_break_out_of_the_config(bad: str) -> None:
    with pytest.raises(ValueError):
        render_template("${GATEWAY_SECRET}", {**VALUES, "GATEWAY_SECRET": bad})


def test_real_template_uses_every_variable_and_keeps_nginx_variables() -> None:
    text = template_path(repo_root()).read_text()
    for name in TEMPLATE_VARIABLES:
        assert "${" + name + "}" in text
    out = render_template(text, VALUES)
    assert "${" not in out
    for nginx_var in ("$request_id", "$http_authorization", "$upstream_http_x_user_id", "$binary_remote_addr"):
        assert nginx_var in out
    assert 'proxy_set_header X-Gateway-Secret "s3cr3t";' in out


@pytest.mark.skipif(not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed")
def test_rendered_config_passes_nginx_t(tmp_path: Path) -> None:
    conf = write_gateway_config(
        repo=repo_root(),
        prefix=tmp_path / "nginx",
        logs=tmp_path / "logs",
        listen="127.0.0.1:1",
        upstreams={"auth": "127.0.0.1:2", "files": "127.0.0.1:3", "trash": "127.0.0.1:4", "billing": "127.0.0.1:5",
                   "s3": "127.0.0.1:6"},
        gateway_secret="secret",
        trusted_proxies=("10.0.0.0/8", "2001:db8::/32"),
    )
    nginx = "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else shutil.which("nginx")
    res = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", f"{tmp_path / 'nginx'}/", "-e", str(tmp_path / "logs" / "e.log")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
