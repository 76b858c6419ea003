"""The direct YAML writer for annotations and locks reads back (with PyYAML, as kbld's YAML 1.1 would) as the
same data, whatever the strings hold."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cnbplatform.resolve.documents import dump_sorted

leaves = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(max_size=30)
data = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(data, min_size=1, max_size=4) | st.dictionaries(st.text(max_size=12), data, min_size=1, max_size=4))
def test_reads_back_as_written(value: Any) -> None:
    assert yaml.safe_load(dump_sorted(value)) == value


def test_reference_strings_stay_plain_and_lookalikes_are_quoted() -> None:
    text = dump_sorted(
        [
            {
                "url": "127.0.0.1:5000/rs/web@sha256:" + "a" * 64,
                "origins": [{"resolved": {"tag": "1.0", "url": "nginx:1.0"}}],
            }
        ]
    )
    assert "url: 127.0.0.1:5000/rs/web@sha256:" in text and 'tag: "1.0"' in text and "url: nginx:1.0" in text
