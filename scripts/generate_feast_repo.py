"""Generate Feast data sources and feature views from the dbt manifest.

    python -m scripts.generate_feast_repo            # dbt parse, then write feature_repo/*.py
    python -m scripts.generate_feast_repo --check    # exit 1 when the committed files are stale

A feature's name, type and description are declared once, in the dbt marts' YAML: a model with
`config.meta.feast.feature_view` becomes a `PostgreSQLSource` + `FeatureView`, each column with
`meta.feast_feature: true` a Field. (`feast dbt import` cannot emit Postgres sources.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from scripts import run_dbt, settings

REPO_DIR = settings.PROJECT_ROOT / "feature_repo"
MANIFEST = run_dbt.DBT_DIR / "target" / "manifest.json"
FEAST_TYPES = {
    "bigint": "Int64",
    "integer": "Int32",
    "double precision": "Float64",
    "real": "Float32",
    "boolean": "Bool",
    "text": "String",
    "timestamp with time zone": "UnixTimestamp",
}
HEADER = '''"""GENERATED from the dbt manifest by scripts/generate_feast_repo.py: do not edit.

{what}
Change the dbt marts' YAML (dbt_project/models/marts/) and run
`.venv/bin/python -m scripts.generate_feast_repo`; a test fails when this file is stale.
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


def render_sources(models: list[dict]) -> str:
    out = [HEADER.format(what="One PostgreSQLSource per dbt feature mart.")]
    out.append(
        "from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import "
        "PostgreSQLSource\n"
    )
    for node in models:
        meta = node["config"]["meta"]
        out.append(
            f"{node['name']}_source = PostgreSQLSource(\n"
            f"    name={_literal(node['name'] + '_source')},\n"
            f"    table={_literal(node['schema'] + '.' + node['alias'])},\n"
            f"    timestamp_field={_literal(meta['feast']['timestamp_field'])},\n"
            f"    description={_literal(node['description'])},\n"
            f"    owner={_literal(meta.get('owner', ''))},\n"
            f'    tags={{"dbt_model": {_literal(node["unique_id"])}}},\n'
            ")\n"
        )
    return "\n".join(out)


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
        cwd=settings.PROJECT_ROOT,
    )
    return result.stdout


def rendered(manifest_path: Path = MANIFEST) -> dict[Path, str]:
    models = feast_models(json.loads(manifest_path.read_text()))
    files = {
        REPO_DIR / "data_sources.py": render_sources(models),
        REPO_DIR / "feature_views.py": render_views(models),
    }
    return {path: _ruff_format(path, text) for path, text in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are stale")
    parser.add_argument("--manifest", type=Path, help="use this manifest instead of running dbt parse")
    args = parser.parse_args(argv)
    if args.manifest is None and not run_dbt.run(["parse", "--quiet"]):
        return 1
    files = rendered(args.manifest or MANIFEST)
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(settings.PROJECT_ROOT)} is out of sync with the dbt YAML", file=sys.stderr
            )
        return 1 if stale else 0
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(settings.PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
