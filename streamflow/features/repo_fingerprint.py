"""The fingerprint of an apply: what `feast apply` of feature_repo/ would write depends on the
repository's files, the versions of Feast and of the platform that read them, and the
configuration in effect. Credentials are never part of it (a password changed is the same apply),
nor is a process's own state."""

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


def settings_in_effect() -> dict[str, str]:
    """Every declared variable that is set, without credentials (URLs' passwords; passwords and
    tokens left out) nor the internal ones (a process's own state, such as Feast's metrics folder):
    what a record of the configuration may keep."""
    return {
        name: without_credentials(text)
        for name, variable in sorted(config.VARIABLES.items())
        if (text := config.raw(name)) is not None
        and not variable.meaning.startswith("internal:")
        and not any(word in name for word in ("PASSWORD", "TOKEN"))
    }


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # a checkout never installed
        return "unknown"


def fingerprint() -> str:
    """What an apply applies: the repository's files, the versions that read them, and the
    configuration in effect (Feast's sections and every setting, credentials left out)."""
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
    } | settings_in_effect()
    for name, value in sorted(settings.items()):
        digest.update(f"{name}={without_credentials(value)}\n".encode())
    return digest.hexdigest()
