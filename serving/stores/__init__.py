"""The API's readers of the online stores, one per store module of streamflow/online/, all
keeping base.OnlineReader's promises: `serving/stores/<store>.py` brings `open_reader(settings,
project)`. `open_reader` here picks the one `ONLINE_STORE` names, once, at start-up, from the
API's own settings and the Feast project's name (no Feast configuration, no offline engine);
nothing else in serving/ knows which store it reads."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from streamflow.features.store import project_name

if TYPE_CHECKING:
    from serving.settings import ServingSettings
    from serving.stores.base import OnlineReader


def open_reader(settings: ServingSettings) -> OnlineReader:
    module = importlib.import_module(f"serving.stores.{settings.online_store}")
    return module.open_reader(settings, project_name())
