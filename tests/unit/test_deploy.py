"""The Docker images, checked without building them (no image can be pulled here): what they
copy exists, the command they run is a real entry point whose flags the CLI accepts, the port
they expose is the one the server listens on, the health check asks /health there, and the
server does not run as root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from whisper_streaming import cli
from whisper_streaming.server.websocket_server import WhisperStreamingServer

DOCKERFILES = [REPO / "Dockerfile", REPO / "deploy" / "Dockerfile.gpu"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = path.read_text().replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            out.append((name.upper(), rest.strip()))
    return out


def last(steps: list[tuple[str, str]], name: str) -> str:
    values = [rest for n, rest in steps if n == name]
    assert values, f"no {name}"
    return values[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_the_real_server_on_the_exposed_port(
    dockerfile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = instructions(dockerfile)
    for name, rest in steps:
        if name == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.name} copies missing {source}"
    user = last(steps, "USER")
    assert user not in ("root", "0")
    port = int(last(steps, "EXPOSE"))
    entrypoint = json.loads(last(steps, "ENTRYPOINT"))
    command = json.loads(last(steps, "CMD"))
    pyproject = (REPO / "pyproject.toml").read_text()
    assert entrypoint == ["whisper-streaming"]
    assert '\n[project.scripts]\nwhisper-streaming = "whisper_streaming.cli:main"' in pyproject
    health = last(steps, "HEALTHCHECK")
    assert f"127.0.0.1:{port}/health/live" in health  # liveness: a full server is alive

    served: dict[str, Any] = {}

    def run(self: WhisperStreamingServer, host: str, port: int) -> None:
        served.update(host=host, port=port, server=self)

    monkeypatch.setattr(WhisperStreamingServer, "run", run)
    assert cli.main(command) == 0  # the flags are the CLI's; nothing is loaded
    assert served["host"] == "0.0.0.0" and served["port"] == port


def test_dockerignore_keeps_local_environments_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "test-artifacts"} <= set(ignored)


def test_kubernetes_manifests_match_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifests parse; the container's args are the CLI's and serve on the port the
    probes and the Service use; the probe paths are real routes; the grace period covers the
    drain; the autoscaler's metric is one /metrics exports."""
    import yaml

    from whisper_streaming.server.metrics import ServerMetrics

    docs = list(
        yaml.safe_load_all((REPO / "deploy" / "k8s" / "whisper-streaming.yaml").read_text())
    )
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    served: dict[str, Any] = {}

    def run(self: WhisperStreamingServer, host: str, port: int) -> None:
        served.update(host=host, port=port, server=self)

    monkeypatch.setattr(WhisperStreamingServer, "run", run)
    assert cli.main(container["args"]) == 0
    assert served["port"] == ports["http"] and served["host"] == "0.0.0.0"
    paths = {r.path for r in served["server"].app().routes if hasattr(r, "path")}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in paths
        assert container[probe]["httpGet"]["port"] == "http"
    options = served["server"].options
    assert pod["terminationGracePeriodSeconds"] >= options.shutdown_timeout_s + 5
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    metric = kinds["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    assert metric in ServerMetrics().render().decode()
