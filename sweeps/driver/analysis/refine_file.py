"""The refined sweep file, written as the user wrote the coarse one: same comments, order and
`$schema` line, only the changed values changed (ruamel.yaml's round trip).

What the coarse sweep ran with but its file does not say (`--set` overrides, `--seed`,
`--num-samples`) is carried into the refined file too, so the fine sweep is the coarse
one narrowed, not the file on disk narrowed.
"""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from sweeps.driver.sweep_file.reading import load_yaml
from sweeps.driver.sweep_file.validation import validate_sweep

UNCARRIED = ("mlflow.tracking_uri",)  # never in the resolved file MLflow keeps: the user's stays


def refined_file(
    user_text: str,
    coarse: dict[str, Any],
    changes: dict[str, Any],
    *,
    comments: dict[str, str] | None = None,
) -> str:
    """`user_text` (the coarse sweep's file) with `changes` (dotted key -> value) and whatever the
    coarse
    sweep (`coarse`, its resolved file) ran with that the text does not say."""
    yaml = YAML()  # round trip: comments, key order and flow style survive
    yaml.preserve_quotes = True
    yaml.width = 4096
    # null as the sweep files write it, not an empty value.
    yaml.representer.add_representer(
        type(None),
        lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null"),
    )
    document = yaml.load(user_text)
    written = validate_sweep(
        load_yaml(user_text, source="the coarse sweep file"), source="the coarse sweep file"
    ).model_dump(mode="json")
    for dotted, value in {**differences(written, coarse), **changes}.items():
        _set(document, dotted, value, comment=(comments or {}).get(dotted))
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


def differences(written: dict[str, Any], ran: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys whose value in `ran` differs from `written` (a distribution counts as one
    value)."""
    found: dict[str, Any] = {}
    for key, value in ran.items():
        dotted = f"{prefix}{key}"
        if dotted in UNCARRIED:
            continue
        mine = written.get(key)
        if (
            isinstance(value, dict)
            and isinstance(mine, dict)
            and dotted != "params"
            and not dotted.startswith("params.")
        ):
            found |= differences(mine, value, f"{dotted}.")
        elif dotted == "params" and isinstance(mine, dict):
            found |= {
                f"params.{name}": spec for name, spec in value.items() if mine.get(name) != spec
            }
        elif mine != value:
            found[dotted] = value
    return found


def _set(document: CommentedMap, dotted: str, value: Any, *, comment: str | None) -> None:
    *sections, key = dotted.split(".")
    node = document
    for section in sections:
        if not isinstance(node.get(section), dict):
            node[section] = CommentedMap()
        node = node[section]
    node[key] = _flow(value)
    if comment and key not in node.ca.items:  # the user's own comment stays
        node.yaml_add_eol_comment(comment, key)


def _flow(value: Any) -> Any:
    """Mappings and lists written inline (`{log_uniform: [0.001, 0.1]}`), as sweep files write
    them."""
    if isinstance(value, dict):
        mapping = CommentedMap((key, _flow(item)) for key, item in value.items())
        mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        sequence = CommentedSeq(_flow(item) for item in value)
        sequence.fa.set_flow_style()
        return sequence
    return value
