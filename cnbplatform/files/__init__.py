"""One typed dataclass per file the Cloud Native Buildpacks spec defines (buildpack.toml, order.toml, group.toml,
plan.toml, analyzed.toml, metadata.toml, report.toml, run.toml, project.toml, builder.toml, package.toml, …) and
the image labels: parse, validate with a one-line error naming file and key, and write. Plain data: no I/O beyond
the file itself, and no image model (docs/design.md §2)."""
