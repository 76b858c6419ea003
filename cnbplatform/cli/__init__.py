"""The command line: parse argv (the option table in :mod:`cnbplatform.cli.options`), build a typed request,
call one platform function and render its result. The only place an exception becomes an exit code and a
one-line message (docs/design.md §2)."""
