"""A buildpack on disk as the lifecycle uses it: finding one by id and version (``lookup``), env-dir semantics
(``envdir``: ``override``, ``prepend``, ``append``, ``default``, ``delim``), the platform's and the layers'
environment (``env``, ``layers_env``) (docs/design.md §2). It runs nothing."""
