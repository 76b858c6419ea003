"""The lifecycle's phases (detect, analyze, restore, build, export, rebase) and the cache. Each phase is a function
of one frozen inputs dataclass and writes only the files the spec gives it; it reports through a
:class:`~cnbplatform.lifecycle.common.Reporter` and never reads the environment, prints or exits
(docs/design.md §2, docs/spec-notes.md)."""
