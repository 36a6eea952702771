"""Store backends and their registry: ``DOSSIER_STORE`` picks one from ``STORES``.

Each backend module is imported only when chosen (chromadb is heavy), so the registry
imports its backends inside the factories and the backends import only the interface
in ``dossier.index.store``.
"""

from __future__ import annotations

from collections.abc import Callable

from dossier.index.store import PassageStore
from dossier.settings import Settings


def _persistent(settings: Settings) -> PassageStore:
    from dossier.index.stores.chroma import persistent

    return persistent(settings)


def _http(settings: Settings) -> PassageStore:
    from dossier.index.stores.chroma import http

    return http(settings)


def _memory(settings: Settings) -> PassageStore:
    from dossier.index.stores.memory import MemoryStore

    return MemoryStore()


STORES: dict[str, Callable[[Settings], PassageStore]] = {
    "chroma-persistent": _persistent,
    "chroma-http": _http,
    "memory": _memory,
}


def build_store(settings: Settings) -> PassageStore:
    return STORES[settings.store](settings)
