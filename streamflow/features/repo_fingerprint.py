"""The fingerprint of an apply: what `feast apply` of feature_repo/ would write depends on the
repository's files, the versions of Feast and of the platform that read them, and the
configuration that chooses the stores and the sources. Credentials are never part of it (a
password changed is the same apply), nor are settings the registry does not see."""

from __future__ import annotations

import hashlib
import json
import re
from importlib.metadata import PackageNotFoundError, version

from streamflow import config, engines, targets
from streamflow.features.store import REPO_DIR, registry_url

# a URL's password (scheme://user:password@host), a conninfo's or query's password=...
CREDENTIALS = re.compile(r"(?<=://)([^:/@\s]*):[^@/\s]*@|password\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s&]*)")


def without_credentials(text: str) -> str:
    """`text` with the passwords of the URLs and conninfo strings in it left out."""
    return CREDENTIALS.sub(lambda m: f"{m.group(1)}@" if m.group(1) is not None else "password=", text)


# The settings that shape what an apply writes, beyond the registry's place and the offline
# store's section: which stores, where the lake engines' sources are. Others (the seeds' folder,
# log format, the API's) leave the registry as it is: a change of them is the same apply.
SHAPING = (
    config.OFFLINE_ENGINE,
    config.LAKE_DIR,
    config.ONLINE_STORE,
    config.REDIS_URL,
    config.REDIS_CLUSTER,
)


def shaping_settings() -> dict[str, str]:
    """The SHAPING settings that are set, as given (fingerprint leaves their credentials out)."""
    return {name: text for name in SHAPING if (text := config.raw(name)) is not None}


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # a checkout never installed
        return "unknown"


def fingerprint() -> str:
    """What an apply applies: the repository's files, the versions that read them, and the
    configuration that shapes it (the registry's place, the stores, credentials left out)."""
    digest = hashlib.sha256()
    for name in ("feast", "streamflow-features"):
        digest.update(f"{name}=={_version(name)}\n".encode())
    files = (p for p in sorted(REPO_DIR.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(f"{path.relative_to(REPO_DIR)}\n".encode() + path.read_bytes() + b"\n")
    # where the registry is, the offline store's section, and the settings that choose the rest
    # (the online store's section derives from them; building it would import Feast)
    admin = targets.admin_target()
    admin = admin.with_role(admin.user, "")
    settings = {
        "registry": registry_url(admin),
        "offline_store": json.dumps(engines.current().feast_offline_store(admin), sort_keys=True),
    } | shaping_settings()
    for name, value in sorted(settings.items()):
        digest.update(f"{name}={without_credentials(value)}\n".encode())
    return digest.hexdigest()
