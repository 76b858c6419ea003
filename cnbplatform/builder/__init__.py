"""Images cnb makes from definitions: builder images from ``builder.toml``, buildpackages from ``package.toml``
(pack's schemas), and Debian base images (build and run) from a package list (docs/design.md §2)."""
