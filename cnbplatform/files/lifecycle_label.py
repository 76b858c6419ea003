"""The ``io.buildpacks.lifecycle.metadata`` label (docs/spec-notes.md §6.4), the names of the buildpacks labels, and the
JSON helpers every label shares.

The rebaser reads only this label, so it lives apart from the build, project and cache metadata labels
(``labels.py``, which re-exports everything here): reading it loads no build-metadata or launch types.

``to_json()`` is canonical (sorted keys, no spaces), so equal metadata gives equal bytes and equal image
configs. ``from_json()`` is tolerant as LC is for a previous image: an undecodable label yields empty metadata;
``from_json_strict()`` raises :class:`SpecFileError` naming the label and the key instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeVar

from cnbplatform.files.common import SpecFileError, Table, check_nesting
from cnbplatform.files.layers_metadata import BuildpackLayers, LayersMetadata, RunImageForRebase, RunImageRef

LIFECYCLE_METADATA_LABEL = "io.buildpacks.lifecycle.metadata"
BUILD_METADATA_LABEL = "io.buildpacks.build.metadata"
PROJECT_METADATA_LABEL = "io.buildpacks.project.metadata"
CACHE_METADATA_LABEL = "io.buildpacks.lifecycle.cache.metadata"
REBASABLE_LABEL = "io.buildpacks.rebasable"
EXEC_ENV_LABEL = "io.buildpacks.exec-env"
STACK_LABEL_PREFIX = "io.buildpacks.stack."
STACK_ID_LABEL = "io.buildpacks.stack.id"
STACK_MIXINS_LABEL = "io.buildpacks.stack.mixins"
BASE_LABEL_PREFIX = "io.buildpacks.base."
BASE_ID_LABEL = "io.buildpacks.base.id"
BASE_DISTRO_NAME_LABEL = "io.buildpacks.base.distro.name"
BASE_DISTRO_VERSION_LABEL = "io.buildpacks.base.distro.version"
BASE_MAINTAINER_LABEL = "io.buildpacks.base.maintainer"
BASE_HOMEPAGE_LABEL = "io.buildpacks.base.homepage"
BASE_RELEASED_LABEL = "io.buildpacks.base.released"
BASE_DESCRIPTION_LABEL = "io.buildpacks.base.description"
BASE_METADATA_LABEL = "io.buildpacks.base.metadata"
#: cnb's own label on a run image without ``/bin/sh`` (``"false"``): the exporter then bakes the default process
#: into the config instead of the sh launcher (docs/design.md decision 3). Here, not in builder_labels.py, so that
#: the exporter reads it without loading the builder's label types.
RUN_IMAGE_SHELL_LABEL = "io.cnb.base.shell"

_T = TypeVar("_T")


def _json_default(value: Any) -> Any:
    """TOML dates and times (from free-form metadata) become ISO 8601 strings, as LC's JSON does."""
    import datetime

    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, UTF-8 text (not \\u escapes)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _drop_nulls(value: Any) -> Any:
    """Go writes nil slices/maps as ``null``; read them as absent."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def decode_label(text: str, label: str) -> Table:
    """Parse label JSON into a :class:`Table` whose errors name *label*; the top level must be an object."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SpecFileError(label, f"label is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecFileError(label, "label is not a JSON object")
    check_nesting(data, label)
    return Table(_drop_nulls(data), label)


def tolerant(strict: Callable[[str], _T], text: str, empty: _T) -> _T:
    """``strict(text)``, or *empty* when the label does not decode (how LC reads a previous image's labels)."""
    try:
        return strict(text)
    except SpecFileError:
        return empty


def sha_json(table: Table, key: str) -> str | None:
    """``{"sha": …}`` under *key*; absent or ``""`` (LC writes ``{"sha": ""}`` for "none") is ``None``."""
    return (table.table(key).get_str("sha") or None) if table.has(key) else None


# -- io.buildpacks.lifecycle.metadata ---------------------------------------------------------------------------


class LifecycleMetadata(LayersMetadata):
    """The ``io.buildpacks.lifecycle.metadata`` label (§6.4): :class:`LayersMetadata` in its JSON form.

    It adds no fields, so it is not decorated again: it inherits the frozen dataclass's generated methods (equality
    still requires the same class) instead of generating them anew at import.
    """

    @classmethod
    def from_layers_metadata(cls, metadata: LayersMetadata) -> LifecycleMetadata:
        return cls(**{f.name: getattr(metadata, f.name) for f in fields(LayersMetadata)})

    def to_layers_metadata(self) -> LayersMetadata:
        return LayersMetadata(**{f.name: getattr(self, f.name) for f in fields(LayersMetadata)})

    def to_json_dict(self) -> dict[str, Any]:
        return self.serialise(json_names=True)

    def to_json(self) -> str:
        return canonical_json(self.to_json_dict())

    @classmethod
    def from_json_table(cls, table: Table) -> LifecycleMetadata:
        """From the JSON form (the label), already decoded into *table*. (``from_table`` reads the TOML form.)"""
        if isinstance(table.data.get("app"), dict):  # very old labels: a single {"sha": …}
            app: tuple[str, ...] = (table.table("app").get_str("sha"),)
        else:
            app = tuple(t.get_str("sha") for t in table.tables("app"))
        run = table.table("runImage")
        return cls(
            app=app,
            sbom=sha_json(table, "sbom"),
            config=sha_json(table, "config"),
            launcher=sha_json(table, "launcher"),
            process_types=sha_json(table, "process-types"),
            buildpacks=tuple(BuildpackLayers.from_table(t, "data") for t in table.tables("buildpacks")),
            run_image=RunImageForRebase(
                top_layer=run.get_str("topLayer"),
                reference=run.get_str("reference"),
                image=run.get_str("image"),
                mirrors=tuple(run.str_list("mirrors")),
            ),
            stack=RunImageRef.from_table(table.table("stack").table("runImage")) if table.has("stack") else None,
        )

    @classmethod
    def from_json_strict(cls, text: str) -> LifecycleMetadata:
        return cls.from_json_table(decode_label(text, LIFECYCLE_METADATA_LABEL))

    @classmethod
    def from_json(cls, text: str | None) -> LifecycleMetadata:
        """Tolerant: a missing, empty or undecodable label is empty metadata (LC, for the previous image)."""
        return tolerant(cls.from_json_strict, text or "", cls())
