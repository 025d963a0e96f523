"""Feast data sources and feature views, rendered from the dbt manifest.

A feature's name, type and description are declared once, in the dbt marts' YAML: a model with
`config.meta.feast.feature_view` becomes a data source + `FeatureView`, each column with
`meta.feast_feature: true` a Field. (`feast dbt import` cannot emit Postgres sources.)

Each mart's source arguments are rendered once; the offline engine in use builds its kind of
source from them (`OfflineEngine.feast_source`: Feast requires the kind its offline store reads),
so a new engine needs nothing here. The feature views are the same for every engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from streamflow import dbt, targets
from streamflow.features.store import REPO_DIR

MANIFEST = dbt.target_dir() / "manifest.json"
# Contract data types (PostgreSQL's, then Spark's names for the same) -> Feast types
FEAST_TYPES = {
    "bigint": "Int64",
    "integer": "Int32",
    "double precision": "Float64",
    "real": "Float32",
    "boolean": "Bool",
    "text": "String",
    "timestamp with time zone": "UnixTimestamp",
    "int": "Int32",
    "double": "Float64",
    "float": "Float32",
    "string": "String",
    "timestamp": "UnixTimestamp",
}
HEADER = '''"""GENERATED from the dbt manifest by streamflow/features/feast_repo_gen.py: do not edit.

{what}
Change the dbt marts' YAML (dbt_project/models/marts/) and run
`.venv/bin/streamflow generate-feast-repo`; a test fails when this file is stale.
"""
'''


def feast_models(manifest: dict) -> list[dict]:
    models = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("meta", {}).get("feast")
    ]
    return sorted(models, key=lambda n: n["name"])


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _source_arguments(node: dict) -> str:
    meta = node["config"]["meta"]
    return (
        f"        name={_literal(node['name'] + '_source')},\n"
        f"        table={_literal(node['schema'] + '.' + node['alias'])},\n"
        f"        timestamp_field={_literal(meta['feast']['timestamp_field'])},\n"
        f"        description={_literal(node['description'])},\n"
        f"        owner={_literal(meta.get('owner', ''))},\n"
        f'        tags={{"dbt_model": {_literal(node["unique_id"])}}},\n'
    )


def render_sources(models: list[dict]) -> str:
    """Each mart's source arguments once (MARTS), and a source of each engine's kind built from them."""
    out = [HEADER.format(what="One data source per dbt feature mart, of the kind the offline engine reads.")]
    out.append("from streamflow.engines import feast_sources\n")
    out.append("# Each mart's source arguments; the offline engine in use builds its kind of source.")
    out.append("MARTS = {")
    for node in models:
        out.append(f"    {_literal(node['name'])}: dict(\n{_source_arguments(node)}    ),")
    out.append("}\n")
    out.append("SOURCES = feast_sources(MARTS)\n")
    for node in models:
        out.append(f"{node['name']}_source = SOURCES[{_literal(node['name'])}]")
    return "\n".join(out) + "\n"


def render_views(models: list[dict]) -> str:
    types = sorted(
        {
            FEAST_TYPES[c["data_type"]]
            for n in models
            for c in n["columns"].values()
            if c.get("config", {}).get("meta", {}).get("feast_feature")
            or c.get("meta", {}).get("feast_feature")
        }
    )
    out = [HEADER.format(what="One FeatureView per dbt feature mart, fields from its contract.")]
    out.append("from datetime import timedelta\n")
    out.append("from data_sources import (")
    out += [f"    {n['name']}_source," for n in models]
    out.append(")")
    out.append("from entities import user")
    out.append("from feast import FeatureView, Field")
    out.append(f"from feast.types import {', '.join(types)}\n")
    for node in models:
        meta = node["config"]["meta"]
        feast_meta = meta["feast"]
        fields = []
        for column in node["columns"].values():
            column_meta = {**column.get("meta", {}), **column.get("config", {}).get("meta", {})}
            if not column_meta.get("feast_feature"):
                continue
            if column["data_type"] not in FEAST_TYPES:
                raise SystemExit(f"{node['name']}.{column['name']}: no Feast type for {column['data_type']}")
            fields.append(
                f"        Field(\n"
                f"            name={_literal(column['name'])},\n"
                f"            dtype={FEAST_TYPES[column['data_type']]},\n"
                f"            description={_literal(column['description'])},\n"
                f"        ),"
            )
        out.append(
            f"{feast_meta['feature_view']} = FeatureView(\n"
            f"    name={_literal(feast_meta['feature_view'])},\n"
            f"    entities=[user],\n"
            f"    ttl=timedelta(days={int(feast_meta['ttl_days'])}),\n"
            f"    schema=[\n" + "\n".join(fields) + "\n    ],\n"
            f"    source={node['name']}_source,\n"
            f"    online=True,\n"
            f"    description={_literal(node['description'])},\n"
            f"    owner={_literal(meta.get('owner', ''))},\n"
            f'    tags={{"dbt_model": {_literal(node["unique_id"])}}},\n'
            ")\n"
        )
    return "\n".join(out)


def _ruff_format(path: Path, text: str) -> str:
    """Generated code is formatted like the hand-written code, so lint stays clean."""
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [str(ruff), "format", "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        cwd=targets.PROJECT_ROOT,
    )
    return result.stdout


def rendered(manifest_path: Path = MANIFEST) -> dict[Path, str]:
    models = feast_models(json.loads(manifest_path.read_text()))
    files = {
        REPO_DIR / "data_sources.py": render_sources(models),
        REPO_DIR / "feature_views.py": render_views(models),
    }
    return {path: _ruff_format(path, text) for path, text in files.items()}
