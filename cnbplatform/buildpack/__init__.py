"""A buildpack on disk as the lifecycle uses it: env-dir semantics (``override``, ``prepend``, ``append``,
``default``, ``delim``) and the environment a buildpack's layers contribute (docs/design.md §2). It runs nothing."""
