"""What ``cnb`` does for a user: ``run_build``, ``run_rebase``, ``run_image`` and the image, builder and SBOM
commands. Resolves inputs (flags > environment > config > defaults), picks the stores, prepares directories,
calls the lifecycle's phases in order and reports progress. Never parses argv (docs/design.md §2)."""
