"""The shared vocabulary: ids, the frozen `*Spec` models of the manifests, statuses and views."""
