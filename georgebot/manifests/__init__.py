"""Desired state from Git: parsing, validation and rendering of the manifests.

The engine calls `source.ManifestSource` (sync a branch into a `snapshot.Snapshot`, check a
revision out); the CLI also calls `source.load_worktree` and `schema.manifest_schema`.
Only `gitrepo.py` imports `git`.
"""
