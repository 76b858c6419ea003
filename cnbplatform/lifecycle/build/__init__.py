"""The build phase: run each buildpack's ``bin/build`` (``phase``), read what it left in its layers directory
(``layers``: layer tomls, ``outputs``: launch.toml, build.toml, processes), check and place its SBOMs (``sbom``)."""
