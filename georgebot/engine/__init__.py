"""The reconcile engine: makes the actual state (the store) match the desired state (Git)."""
