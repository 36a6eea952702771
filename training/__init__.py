"""Fitting Dossier's learned parts; never imported at run time (see training/README.md)."""
