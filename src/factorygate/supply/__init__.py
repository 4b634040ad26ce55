"""Supply chain: signing keys, cosign-compatible signatures and attestations, signed bundles."""
