"""Kubernetes manifests, checked in and rendered, validated offline against the real schemas.

Core kinds go through kubernetes-validate in strict mode; RayJob and RayCluster
through the KubeRay v1.7.0 CRDs' openAPIV3Schema with unknown fields refused.
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from cli import cli
from sweeps.driver.sweep_file.validation import validate_sweep
from tests.conftest import REPO

# kubernetes-validate loads the full Kubernetes schemas: seconds per manifest.
pytestmark = pytest.mark.slow

CRDS = Path(os.environ.get("SWEEP_KUBERAY_CRDS", REPO.parent / "shared" / "k8s-crds"))
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
# The command whose output k8s/ is (also in the README).
CHECKED_IN_RENDER = [
    "k8s",
    "render",
    str(REPO / "search.yaml"),
    "--image",
    "ghcr.io/example/sweep:0.1.0",
    "--namespace",
    "sweep",
]


def crd_validator(kind: str) -> jsonschema.protocols.Validator:
    path = CRDS / CRD_FILES[kind]
    if not path.is_file():
        pytest.skip(f"KubeRay CRDs not found at {CRDS} (set SWEEP_KUBERAY_CRDS)")
    return _crd_validator(kind)


@functools.cache  # a CRD is megabytes of YAML: read and checked once per test run
def _crd_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = crd_schema(kind)
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def crd_schema(kind: str) -> dict:
    crd = yaml.safe_load((CRDS / CRD_FILES[kind]).read_text())
    [version] = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
    return refuse_unknown_fields(copy.deepcopy(version["schema"]["openAPIV3Schema"]))


def refuse_unknown_fields(schema: dict) -> dict:
    """The API server prunes unknown fields silently; a test should fail on them instead."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            refuse_unknown_fields(value)
    elif isinstance(schema, list):
        for item in schema:
            refuse_unknown_fields(item)
    return schema


def validate_document(document: dict) -> None:
    if document["kind"] in CRD_FILES:
        crd_validator(document["kind"]).validate(document)
    elif document["kind"] == "Kustomization":
        assert set(document) <= {"apiVersion", "kind", "namespace", "resources", "secretGenerator"}
    else:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def documents_in(folder: Path) -> list[dict]:
    return [
        document
        for path in sorted(folder.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def render(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "k8s"
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_checked_in_manifests_are_what_render_writes(tmp_path):
    rendered = render(tmp_path, *CHECKED_IN_RENDER)
    for path in sorted((REPO / "k8s").glob("*.yaml")):
        assert path.read_text() == (rendered / path.name).read_text(), (
            f"k8s/{path.name} is stale: rerun {' '.join(CHECKED_IN_RENDER)}"
        )
    assert (
        "sweep k8s render search.yaml --image ghcr.io/example/sweep:0.1.0 --namespace sweep -o k8s"
        in (REPO / "README.md").read_text()
    )


@pytest.mark.parametrize(
    "document",
    documents_in(REPO / "k8s"),
    ids=lambda document: (
        f"{document['kind']}/{document['metadata' if 'metadata' in document else 'kind']}"
    ),
)
def test_checked_in_manifests_validate(document):
    validate_document(document)


def test_rendered_manifests_validate_and_carry_the_options(tmp_path):
    out = render(
        tmp_path,
        "k8s",
        "render",
        str(REPO / "search.yaml"),
        "--image",
        "registry.local/sweep:1",
        "--workers",
        "3",
        "--gpus-per-worker",
        "2",
        "--namespace",
        "team-a",
        "--set",
        "search.num_samples=64",
    )
    documents = documents_in(out)
    for document in documents:
        validate_document(document)
    kinds = sorted(document["kind"] for document in documents)
    assert kinds == sorted(
        [
            "ConfigMap",
            "PersistentVolumeClaim",
            "RayJob",
            "RayCluster",
            "Job",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "Kustomization",
        ]
    )
    job = next(document for document in documents if document["kind"] == "RayJob")
    assert job["spec"]["shutdownAfterJobFinishes"] is True and job["spec"]["backoffLimit"] == 2
    [workers] = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (3, 3, 3)
    worker = workers["template"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert worker["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert worker["containers"][0]["image"] == "registry.local/sweep:1"
    assert all(
        document["metadata"].get("namespace") in (None, "team-a")
        for document in documents
        if "metadata" in document
    )
    # The embedded sweep file is the resolved one, overrides included, and validates.
    config_map = next(document for document in documents if document["kind"] == "ConfigMap")
    embedded = validate_sweep(yaml.safe_load(config_map["data"]["search.yaml"]), source="ConfigMap")
    assert embedded.search.num_samples == 64 and embedded.mlflow.tracking_uri is None


def test_the_mlflow_server_is_reachable_by_its_service_name_and_not_root():
    documents = documents_in(REPO / "k8s")
    deployment = next(document for document in documents if document["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    allowed = command[command.index("--allowed-hosts") + 1].split(",")
    assert {
        "mlflow",
        "mlflow.sweep.svc.cluster.local",
        "mlflow.sweep.svc.cluster.local:5000",
    } <= set(allowed)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"


def test_a_wrong_manifest_fails_validation():
    documents = documents_in(REPO / "k8s")
    job = copy.deepcopy(next(document for document in documents if document["kind"] == "RayJob"))
    job["spec"]["shutdownAfterJobFinish"] = True  # a typo the API server would silently drop
    with pytest.raises(jsonschema.ValidationError):
        validate_document(job)
    del job["spec"]["shutdownAfterJobFinish"]
    del job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"]
    with pytest.raises(jsonschema.ValidationError):
        validate_document(job)
    deployment = copy.deepcopy(
        next(document for document in documents if document["kind"] == "Deployment")
    )
    deployment["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_document(deployment)


def test_no_credentials_in_the_manifests():
    text = "".join(path.read_text() for path in (REPO / "k8s").glob("*.yaml"))
    assert "MLFLOW_TRACKING_PASSWORD" not in text and "MLFLOW_TRACKING_TOKEN" not in text
    assert "secretRef" in text  # credentials come from the Secret, as environment variables
