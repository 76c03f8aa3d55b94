"""The models layer: packaged model registry, conversion cache, device, embedder, generator."""
