"""Store backends; ``dossier.store.STORES`` picks one by ``DOSSIER_STORE``."""
