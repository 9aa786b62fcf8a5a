"""The compose stack (deploy/compose.yaml) and the controller's image, without running them.

No image can be pulled here, so the stack is checked as files: the YAML parses; every file a
service mounts, every secret, the build context and every COPY source exists in the repository,
or is one ``deploy/make-secrets.sh`` makes; the config the containers read passes
``check-config``; each MQTT client logs in as a role of the ACL, and Grafana's provisioning
names the data source the dashboard uses.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from smelter_ems.cli import main

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SECRETS = DEPLOY / "secrets"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def made_secrets(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names of the files make-secrets.sh makes."""
    out = tmp_path_factory.mktemp("secrets") / "s"
    subprocess.run([str(DEPLOY / "make-secrets.sh"), str(out)], check=True, capture_output=True)
    return {p.name for p in out.iterdir()}


def host_path(source: str) -> Path:
    return (DEPLOY / source).resolve()


def check_source(source: str, made: set[str]) -> None:
    path = host_path(source)
    if path.is_relative_to(SECRETS):
        assert path.parent == SECRETS and path.name in made, f"{source}: not made by the script"
    else:
        assert path.exists(), f"{source}: no such file in the repository"


def test_the_stack_has_its_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "mosquitto",
        "influxdb",
        "grafana",
        "prometheus",
        "controller",
        "simulator",
    }


def test_every_file_mounted_or_given_as_a_secret_exists(
    compose: dict[str, Any], made_secrets: set[str]
) -> None:
    named_volumes = set(compose.get("volumes") or {})
    declared_secrets = compose["secrets"]
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                check_source(source, made_secrets)
            else:
                assert source in named_volumes, f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            assert secret in declared_secrets, f"{name}: secret {secret} not declared"
    for secret in declared_secrets.values():
        check_source(secret["file"], made_secrets)


def test_the_image_builds_from_files_that_exist(compose: dict[str, Any]) -> None:
    build = compose["services"]["controller"]["build"]
    context = host_path(build["context"])
    dockerfile = context / build["dockerfile"]
    assert context == REPO and dockerfile.is_file()
    sources = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (context / source).exists(), f"COPY {source}: not in the build context"
    # every package the distribution declares is copied in
    packages = re.search(r"include = \[([^\]]*)\]", (REPO / "pyproject.toml").read_text())
    assert packages is not None
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert package in sources, f"package {package} is not copied into the image"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for source in sources:
        assert f"!{source.rstrip('/')}" in ignore, f"{source} is excluded from the context"


def test_the_containers_config_passes_check_config(
    compose: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    mounted = {}
    for service in ("controller", "simulator"):
        for volume in compose["services"][service]["volumes"]:
            source, target = volume.split(":")[:2]
            mounted[target] = source
        config = next(
            a.split("=", 1)[1]
            for a in compose["services"][service]["command"]
            if a.startswith("--config=")
        )
        assert config in mounted, f"{service}: {config} is not mounted"
        assert main(["check-config", str(host_path(mounted[config]))]) == 0
    assert "OK" in capsys.readouterr().out


def test_each_client_logs_in_as_a_role_of_the_acl_with_its_own_secret(
    compose: dict[str, Any],
) -> None:
    acl_users = set(re.findall(r"^user (\S+)$", (DEPLOY / "mosquitto" / "acl").read_text(), re.M))
    for service, role in (("controller", "controller"), ("simulator", "plant")):
        command = compose["services"][service]["command"]
        assert f"--mqtt-username={role}" in command and role in acl_users
        password = f"--mqtt-password-file=/run/secrets/{role}.password"
        assert password in command
        assert f"{role}.password" in compose["services"][service]["secrets"]


def test_grafana_provisions_the_data_source_the_dashboard_uses() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "influxdb.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "influxdb" and source["jsonData"]["version"] == "Flux"
    dashboard = (DEPLOY / "grafana" / "smelter-ems.json").read_text(encoding="utf-8")
    # the dashboard picks its data source by a variable of type datasource, not by an import
    # input (which file provisioning does not fill in)
    assert '"type": "datasource"' in dashboard and "__inputs" not in dashboard
    providers = yaml.safe_load((provisioning / "dashboards" / "smelter-ems.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
