"""The detect phase: run each group's ``bin/detect`` (``run``), resolve the order and its groups (``order``) and
the build plan (``plan``); :mod:`~cnbplatform.lifecycle.detect.phase` writes group.toml and plan.toml."""
