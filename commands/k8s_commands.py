"""`sweep k8s`: the Kubernetes manifests that run a sweep as a KubeRay RayJob."""

from __future__ import annotations

import click

from commands.options import config_options, load_config


@click.group()
def k8s() -> None:
    """Kubernetes: manifests that run a sweep as a KubeRay RayJob."""


@k8s.command("render")
@config_options
@click.option(
    "--image", required=True, help="The container image with sweep installed (see the Dockerfile)."
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Ray worker pods."
)
@click.option("--gpus-per-worker", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--namespace", default="default", show_default=True)
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), required=True)
def k8s_render(
    config_path: str,
    overrides: tuple[str, ...],
    image: str,
    workers: int,
    gpus_per_worker: int,
    namespace: str,
    output_dir: str,
) -> None:
    """Write the manifests that run CONFIG on Kubernetes, with the sweep file embedded in a
    ConfigMap.

    \b
    Example:
        sweep k8s render search.yaml --image registry.example.com/sweep:0.1 --workers 2 -o k8s-out/
        kubectl apply -k k8s-out/
    """
    from pathlib import Path

    from sweeps.driver.cluster.k8s import (
        ClusterShape,
        kubernetes_name,
        render_manifests,
        write_manifests,
    )
    from sweeps.driver.sweep_file.reading import dump_sweep

    # In the cluster the tracking URI comes from the sweep-mlflow Secret, not from a path on this
    # machine.
    config = load_config(config_path, overrides, [("mlflow.tracking_uri", None)])
    shape = ClusterShape(
        image=image, namespace=namespace, workers=workers, gpus_per_worker=gpus_per_worker
    )
    paths = write_manifests(
        render_manifests(kubernetes_name(config.name), dump_sweep(config), shape), Path(output_dir)
    )
    click.echo(
        f"wrote {', '.join(str(path) for path in paths)}; apply with: kubectl apply -k {output_dir}"
    )
