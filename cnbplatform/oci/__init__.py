"""The OCI image model and its stores: descriptors, manifests, indexes and configs, digests, references and
addresses, deterministic tar layers, ``mutate`` (append, config, rebase as pure functions), the stores behind one
protocol (OCI layout, the local store, a registry via :mod:`cnbplatform.oci.registry`, a Docker engine) and safe
rootfs unpacking. Knows nothing about buildpacks (docs/design.md §2)."""
