"""Kubernetes manifests for a sweep: a KubeRay RayJob (or RayCluster), an MLflow server, a plain
Job.

Manifests are plain dicts built here and written as YAML; `k8s/` in the repository
is this module's output for `search.yaml`, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

RAY_VERSION = "2.60.0"
CONFIG_MOUNT = "/config"
RESULTS_MOUNT = "/results"
MLFLOW_SECRET = "sweep-mlflow"  # MLFLOW_TRACKING_URI, and optionally _USERNAME/_PASSWORD/_TOKEN
MLFLOW_PORT = 5000
NON_ROOT = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}


@dataclass(frozen=True)
class ClusterShape:
    image: str
    namespace: str = "default"
    workers: int = 1
    gpus_per_worker: int = 1
    cpus_per_worker: int = 8
    memory_per_worker: str = "32Gi"
    results_storage: str = "50Gi"


def kubernetes_name(name: str) -> str:
    """A sweep name as a DNS-1123 label (lower case, digits and '-', at most 40 so suffixes fit)."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:40].strip("-")
    return label or "sweep"


def render_manifests(
    name: str, sweep_yaml: str, shape: ClusterShape
) -> dict[str, list[dict[str, Any]]]:
    """File name -> the manifests it holds, for a sweep called `name` with file text
    `sweep_yaml`."""
    shared = [config_map(name, sweep_yaml, shape), results_volume(name, shape)]
    return {
        "rayjob.yaml": [*shared, ray_job(name, shape)],
        "raycluster.yaml": [ray_cluster(name, shape)],
        "job.yaml": [batch_job(name, shape)],
        "mlflow.yaml": mlflow_server(shape),
        "kustomization.yaml": [kustomization(shape)],
    }


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (the embedded sweep file) as readable `|` blocks."""


_ManifestDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def dump_manifests(documents: list[dict[str, Any]]) -> str:
    return "---\n".join(
        yaml.dump(document, Dumper=_ManifestDumper, sort_keys=False) for document in documents
    )


def write_manifests(manifests: dict[str, list[dict[str, Any]]], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, documents in manifests.items():
        path = out_dir / filename
        path.write_text(dump_manifests(documents))
        paths.append(path)
    return paths


def _metadata(name: str, shape: ClusterShape, **labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": shape.namespace,
        "labels": {"app.kubernetes.io/part-of": "sweep", **labels},
    }


def config_map(name: str, sweep_yaml: str, shape: ClusterShape) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(f"{name}-sweep", shape),
        "data": {"search.yaml": sweep_yaml},
    }


def results_volume(name: str, shape: ClusterShape) -> dict[str, Any]:
    """Ray Tune's storage: every node writes checkpoints there, so it must be ReadWriteMany."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(f"{name}-results", shape),
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": shape.results_storage}},
        },
    }


def _volumes(name: str) -> list[dict[str, Any]]:
    return [
        {"name": "sweep-file", "configMap": {"name": f"{name}-sweep"}},
        {"name": "results", "persistentVolumeClaim": {"claimName": f"{name}-results"}},
    ]


def _container(
    name: str,
    shape: ClusterShape,
    *,
    role: str,
    resources: dict[str, Any],
    ports: list[dict] | None = None,
) -> dict[str, Any]:
    container = {
        "name": role,
        "image": shape.image,
        "imagePullPolicy": "IfNotPresent",
        # Credentials reach the driver only as environment variables from the Secret.
        "envFrom": [{"secretRef": {"name": MLFLOW_SECRET}}],
        "resources": resources,
        "volumeMounts": [
            {"name": "sweep-file", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "results", "mountPath": RESULTS_MOUNT},
        ],
    }
    if ports:
        container["ports"] = ports
    return container


def _head_group(name: str, shape: ClusterShape) -> dict[str, Any]:
    return {
        # The head only drives the sweep and logs to MLflow; trials run on the workers.
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {
            "spec": {
                "securityContext": NON_ROOT,
                "containers": [
                    _container(
                        name,
                        shape,
                        role="ray-head",
                        resources={
                            "requests": {"cpu": "2", "memory": "8Gi"},
                            "limits": {"cpu": "2", "memory": "8Gi"},
                        },
                        ports=[
                            {"containerPort": 6379, "name": "gcs"},
                            {"containerPort": 8265, "name": "dashboard"},
                            {"containerPort": 10001, "name": "client"},
                        ],
                    )
                ],
                "volumes": _volumes(name),
            }
        },
    }


def _worker_groups(name: str, shape: ClusterShape) -> list[dict[str, Any]]:
    limits = {"cpu": str(shape.cpus_per_worker), "memory": shape.memory_per_worker}
    spec: dict[str, Any] = {"securityContext": NON_ROOT, "volumes": _volumes(name)}
    if shape.gpus_per_worker:
        limits["nvidia.com/gpu"] = str(shape.gpus_per_worker)
        spec["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    spec["containers"] = [
        _container(
            name, shape, role="ray-worker", resources={"requests": dict(limits), "limits": limits}
        )
    ]
    return [
        {
            "groupName": "gpu" if shape.gpus_per_worker else "cpu",
            # The API server would default these, but the CRD's schema requires them.
            "replicas": shape.workers,
            "minReplicas": shape.workers,
            "maxReplicas": shape.workers,
            "rayStartParams": {},
            "template": {"spec": spec},
        }
    ]


def _cluster_spec(name: str, shape: ClusterShape) -> dict[str, Any]:
    return {
        "rayVersion": RAY_VERSION,
        "headGroupSpec": _head_group(name, shape),
        "workerGroupSpecs": _worker_groups(name, shape),
    }


def sweep_command(extra: Sequence[str] = ()) -> list[str]:
    # --resume auto: a retried pod continues the sweep its predecessor left on the volume,
    # a ReadWriteMany claim every Ray pod mounts (hence storage.shared).
    return [
        "sweep",
        "run",
        f"{CONFIG_MOUNT}/search.yaml",
        "--resume",
        "auto",
        "--set",
        f"storage.path={RESULTS_MOUNT}",
        "--set",
        "storage.shared=true",
        *extra,
    ]


def ray_job(name: str, shape: ClusterShape) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": _metadata(name, shape),
        "spec": {
            # Runs on the head; RAY_ADDRESS, set by Ray's job submission, makes sweep join this
            # cluster.
            "entrypoint": " ".join(sweep_command()),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 3600,
            "backoffLimit": 2,
            "rayClusterSpec": _cluster_spec(name, shape),
        },
    }


def ray_cluster(name: str, shape: ClusterShape) -> dict[str, Any]:
    """A long-lived cluster for `sweep run --address` from a laptop (port-forward 10001 or 6379)."""
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": _metadata(f"{name}-cluster", shape),
        "spec": _cluster_spec(name, shape),
    }


def batch_job(name: str, shape: ClusterShape) -> dict[str, Any]:
    """One pod, Ray started inside the process: a small sweep without KubeRay."""
    container = _container(
        name,
        shape,
        role="sweep",
        resources={
            "requests": {"cpu": "4", "memory": "8Gi"},
            "limits": {"cpu": "4", "memory": "8Gi"},
        },
    )
    container["command"] = sweep_command()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(f"{name}-local", shape),
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/part-of": "sweep"}},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": NON_ROOT,
                    "containers": [container],
                    "volumes": _volumes(name),
                },
            },
        },
    }


def mlflow_server(shape: ClusterShape) -> list[dict[str, Any]]:
    """An MLflow tracking server with its store on a volume, reachable in the cluster as
    `mlflow`."""
    service_names = [
        "mlflow",
        f"mlflow.{shape.namespace}",
        f"mlflow.{shape.namespace}.svc",
        f"mlflow.{shape.namespace}.svc.cluster.local",
    ]
    # MLflow answers 403 to a Host it does not know: allow the Service's names, with and without the
    # port.
    allowed_hosts = ",".join(
        [
            *service_names,
            *(f"{host}:{MLFLOW_PORT}" for host in service_names),
            "localhost",
            f"localhost:{MLFLOW_PORT}",
        ]
    )
    labels = {"app.kubernetes.io/name": "mlflow"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata("mlflow", shape, **labels),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one writer for the sqlite store
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "securityContext": NON_ROOT,
                    "containers": [_mlflow_container(shape.image, allowed_hosts)],
                    "volumes": [
                        {"name": "store", "persistentVolumeClaim": {"claimName": "mlflow-store"}}
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata("mlflow", shape, **labels),
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": MLFLOW_PORT, "targetPort": MLFLOW_PORT}],
        },
    }
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata("mlflow-store", shape),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}},
    }
    return [volume, deployment, service]


def _mlflow_container(image: str, allowed_hosts: str) -> dict[str, Any]:
    """The MLflow server's container: its store and artifacts on the volume at /mlflow."""
    probe = {"httpGet": {"path": "/health", "port": MLFLOW_PORT}, "periodSeconds": 10}
    command = ["mlflow", "server", "--backend-store-uri", "sqlite:////mlflow/mlflow.db"]
    command += ["--artifacts-destination", "/mlflow/artifacts", "--host", "0.0.0.0"]
    command += ["--port", str(MLFLOW_PORT), "--allowed-hosts", allowed_hosts]
    return {
        "name": "mlflow",
        "image": image,
        "command": command,
        "ports": [{"containerPort": MLFLOW_PORT, "name": "http"}],
        "readinessProbe": probe,
        "livenessProbe": probe | {"initialDelaySeconds": 30},
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "store", "mountPath": "/mlflow"}],
    }


def kustomization(shape: ClusterShape) -> dict[str, Any]:
    """MLflow plus the RayJob; swap rayjob.yaml for raycluster.yaml (interactive) or job.yaml (one
    pod)."""
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": shape.namespace,
        "resources": ["mlflow.yaml", "rayjob.yaml"],
        # The tracking URI only; add MLFLOW_TRACKING_USERNAME/PASSWORD or _TOKEN with
        # `kubectl create secret generic sweep-mlflow --from-literal=...` instead for a secured
        # server.
        "secretGenerator": [
            {
                "name": MLFLOW_SECRET,
                "literals": [
                    f"MLFLOW_TRACKING_URI=http://mlflow.{shape.namespace}.svc.cluster.local:{MLFLOW_PORT}"
                ],
                "options": {"disableNameSuffixHash": True},
            }
        ],
    }
