"""Data: source readers, the standard form, shards and manifests, training views."""
