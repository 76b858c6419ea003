"""buildpack.toml / extension.toml descriptors, target matching and lookup (docs/spec-notes.md §3.1, §12, §1.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbplatform.buildpack.lookup import find_buildpack, find_extension, version_key
from cnbplatform.errors import NotFoundError
from cnbplatform.files.apis import (
    SUPPORTED_BUILDPACK_APIS,
    SUPPORTED_PLATFORM_APIS,
    ApiVersion,
    ApiVersionError,
    UnsupportedApiError,
    check_buildpack_api,
    check_platform_api,
)
from cnbplatform.files.buildpack_toml import (
    BaseTarget,
    BuildpackDescriptor,
    Distro,
    ExtensionDescriptor,
    License,
    Target,
)
from cnbplatform.files.common import SpecFileError, dumps_toml
from cnbplatform.files.order import GroupEntry

FULL = """
api = "0.12"
[buildpack]
id = "example/node"
version = "1.2.3"
name = "Node"
homepage = "https://example.com/node"
description = "Node.js"
keywords = ["node", "js"]
clear-env = true
sbom-formats = ["application/vnd.cyclonedx+json"]
[[buildpack.licenses]]
type = "MIT"
[[buildpack.licenses]]
uri = "https://example.com/license"
[[buildpack.exec-env]]
name = "production"
[[buildpack.exec-env]]
name = "test"
[[targets]]
os = "linux"
arch = "arm64"
variant = "v8"
[[targets.distros]]
name = "ubuntu"
version = "22.04"
[[targets.distros]]
name = "debian"
[metadata]
answer = 42
[metadata.nested]
list = ["a", "b"]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def bp_toml(bp_id: str = "example/a", version: str = "1.0.0", api: str = "0.12", extra: str = "") -> str:
    return f'api = "{api}"\n[buildpack]\nid = "{bp_id}"\nversion = "{version}"\n{extra}'


def test_full_descriptor_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "bp" / "buildpack.toml", FULL)
    d = BuildpackDescriptor.load(path)
    assert (d.api, d.id, d.version, d.escaped_id) == ("0.12", "example/node", "1.2.3", "example_node")
    assert d.info.name == "Node" and d.info.homepage == "https://example.com/node"
    assert d.info.keywords == ("node", "js") and d.info.clear_env
    assert d.info.sbom_formats == ("application/vnd.cyclonedx+json",)
    assert d.info.licenses == (License(type="MIT"), License(uri="https://example.com/license"))
    assert d.info.exec_env == ("production", "test")
    assert d.targets == (Target("linux", "arm64", "v8", (Distro("ubuntu", "22.04"), Distro("debian", ""))),)
    assert d.metadata == {"answer": 42, "nested": {"list": ["a", "b"]}}
    assert d.path == (tmp_path / "bp").absolute()
    assert not d.is_composite and d.is_semver
    assert str(d) == "example/node@1.2.3"


def test_load_accepts_the_directory(tmp_path: Path) -> None:
    write(tmp_path / "bp" / "buildpack.toml", FULL)
    assert BuildpackDescriptor.load(tmp_path / "bp").id == "example/node"


def test_round_trip(tmp_path: Path) -> None:
    d = BuildpackDescriptor.parse(FULL)
    d.dump(tmp_path / "out" / "buildpack.toml")
    again = BuildpackDescriptor.load(tmp_path / "out" / "buildpack.toml")
    assert again.to_dict() == d.to_dict()
    assert (again.info, again.targets, again.metadata) == (d.info, d.targets, d.metadata)


def test_exec_env_lc_string_list_form() -> None:
    d = BuildpackDescriptor.parse(bp_toml(extra='exec-env = ["production", "*"]\n'))
    assert d.info.exec_env == ("production", "*")


@pytest.mark.parametrize(
    ("exec_env", "api", "env", "expected"),
    [
        ((), "0.12", "test", True),
        (("production",), "0.12", "production", True),
        (("production",), "0.12", "test", False),
        (("*",), "0.12", "test", True),
        (("production",), "0.11", "test", True),  # exec-env only counts from Buildpack API 0.12
    ],
)
def test_supports_exec_env(exec_env: tuple[str, ...], api: str, env: str, expected: bool) -> None:
    listed = ", ".join(f'"{e}"' for e in exec_env)
    d = BuildpackDescriptor.parse(bp_toml(api=api, extra=f"exec-env = [{listed}]\n"))
    assert d.supports_exec_env(env) is expected


def test_variant_spellings() -> None:
    spec = BuildpackDescriptor.parse(bp_toml(extra='[[targets]]\nos = "linux"\nvariant = "v7"\n'))
    lc = BuildpackDescriptor.parse(bp_toml(extra='[[targets]]\nos = "linux"\narch-variant = "v7"\n'))
    assert spec.targets == lc.targets == (Target(os="linux", variant="v7"),)
    both = BuildpackDescriptor.parse(bp_toml(extra='[[targets]]\nvariant = "v7"\narch-variant = "v7"\n'))
    assert both.targets[0].variant == "v7"


def test_variant_spellings_that_disagree_are_refused() -> None:
    with pytest.raises(SpecFileError) as err:
        BuildpackDescriptor.parse(bp_toml(extra='[[targets]]\nvariant = "v7"\narch-variant = "v8"\n'), "/bp.toml")
    assert "/bp.toml" in str(err.value) and "targets[0].arch-variant" in str(err.value)


def test_composite_buildpack_order() -> None:
    text = bp_toml(
        extra="""
[[order]]
[[order.group]]
id = "example/npm"
version = "0.1.0"
optional = true
exec-env = ["production"]
[[order.group]]
id = "example/yarn"
version = "0.2.0"
[[order]]
[[order.group]]
id = "example/pnpm"
version = "0.3.0"
"""
    )
    d = BuildpackDescriptor.parse(text)
    assert d.is_composite
    assert [list(g) for g in d.order] == [
        [GroupEntry("example/npm", "0.1.0", True, ("production",)), GroupEntry("example/yarn", "0.2.0")],
        [GroupEntry("example/pnpm", "0.3.0")],
    ]
    assert BuildpackDescriptor.parse(dumps_toml(d.to_dict())).order == d.order


@pytest.mark.parametrize("extra", ['[[stacks]]\nid = "*"\n', '[[targets]]\nos = "linux"\n'])
def test_composite_with_stacks_or_targets_is_refused(extra: str) -> None:
    text = bp_toml(extra='[[order]]\n[[order.group]]\nid = "x"\nversion = "1"\n' + extra)
    with pytest.raises(SpecFileError) as err:
        BuildpackDescriptor.parse(text, "/cnb/buildpacks/a/buildpack.toml")
    message = str(err.value)
    assert "/cnb/buildpacks/a/buildpack.toml" in message and "composite" in message
    assert ("'stacks'" in message) or ("'targets'" in message)


@pytest.mark.parametrize("reserved", ["app", "config", "generated", "sbom"])
def test_reserved_ids_are_refused(reserved: str) -> None:
    with pytest.raises(SpecFileError) as err:
        BuildpackDescriptor.parse(bp_toml(bp_id=reserved), "/bp/buildpack.toml")
    assert "buildpack.id" in str(err.value) and "reserved" in str(err.value) and "/bp/buildpack.toml" in str(err.value)


@pytest.mark.parametrize(
    "bad_id", ["", "has space", "émoji", "a:b", "a//b", "../x", "a/..", "./a", "/abs", "a\\u0000b"]
)
def test_ids_outside_the_charset_are_refused(bad_id: str) -> None:
    with pytest.raises(SpecFileError, match=r"key 'buildpack\.id'"):
        BuildpackDescriptor.parse(bp_toml(bp_id=bad_id), "/bp.toml")


def test_ids_with_an_underscore_are_accepted_as_the_go_lifecycle_does() -> None:
    assert BuildpackDescriptor.parse(bp_toml(bp_id="under_score/x.y-z")).id == "under_score/x.y-z"


@pytest.mark.parametrize("bad", ["/abs/dir", "../../x", "a/b", "..", ".", "a\\u0000b"])
def test_versions_that_are_not_one_path_segment_are_refused(bad: str) -> None:
    with pytest.raises(SpecFileError, match=r"^/bp/buildpack\.toml: key 'buildpack\.version': "):
        BuildpackDescriptor.parse(bp_toml(version=bad), "/bp/buildpack.toml")


def test_odd_versions_are_kept_but_empty_is_refused() -> None:
    d = BuildpackDescriptor.parse(bp_toml(version="v1"))
    assert d.version == "v1" and not d.is_semver
    assert not BuildpackDescriptor.parse(bp_toml(version="01.2.3")).is_semver
    with pytest.raises(SpecFileError, match=r"key 'buildpack\.version'.*empty"):
        BuildpackDescriptor.parse(bp_toml(version=""), "/bp.toml")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[buildpack]\nid = "a"\nversion = "1"\n', "'api'"),
        ('api = "zero"\n[buildpack]\nid = "a"\nversion = "1"\n', "'api'"),
        ('api = "0.12"\n', "'buildpack'"),
        ('api = "0.12"\n[buildpack]\nversion = "1"\n', "'buildpack.id'"),
        ('api = "0.12"\n[buildpack]\nid = "a"\n', "'buildpack.version'"),
        (bp_toml(extra="clear-env = 1\n"), "'buildpack.clear-env'"),
        (bp_toml(extra="keywords = [1]\n"), "'buildpack.keywords[0]'"),
        (bp_toml(extra="[[buildpack.licenses]]\n"), "'buildpack.licenses[0]'"),
        (bp_toml(extra="exec-env = [1]\n"), "'buildpack.exec-env[0]'"),
        (bp_toml(extra="[[buildpack.exec-env]]\nother = 1\n"), "'buildpack.exec-env[0].name'"),
        (bp_toml(extra="[[targets]]\nos = 1\n"), "'targets[0].os'"),
        (bp_toml(extra='[[stacks]]\nmixins = ["x"]\n'), "'stacks[0].id'"),
        (bp_toml(extra='[[order]]\n[[order.group]]\nid = "x"\n'), "'order[0].group[0].version'"),
        (
            bp_toml(extra='[[order]]\n[[order.group]]\nid = "x"\nversion = "1"\noptional = "yes"\n'),
            "'order[0].group[0].optional'",
        ),
        ('api = "0.12"\nmetadata = 3\n[buildpack]\nid = "a"\nversion = "1"\n', "'metadata'"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "buildpack.toml", text)
    with pytest.raises(SpecFileError) as err:
        BuildpackDescriptor.load(path)
    assert str(path) in str(err.value)
    assert key in str(err.value)


def test_missing_or_bad_api_exits_12() -> None:
    for text in ('[buildpack]\nid = "a"\nversion = "1"\n', 'api = "x"\n[buildpack]\nid = "a"\nversion = "1"\n'):
        with pytest.raises(SpecFileError) as err:
            BuildpackDescriptor.parse(text, "/bp.toml")
        assert err.value.exit_code == 12


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "buildpack.toml", "api = ")
    with pytest.raises(SpecFileError, match="not valid TOML"):
        BuildpackDescriptor.load(bad)
    with pytest.raises(SpecFileError, match="file not found"):
        BuildpackDescriptor.load(tmp_path / "nope" / "buildpack.toml")


# --- targets ------------------------------------------------------------------------------------------------------

UBUNTU_2204_AMD64 = BaseTarget("linux", "amd64", "", Distro("ubuntu", "22.04"))


@pytest.mark.parametrize(
    ("target", "base", "expected"),
    [
        (Target(), UBUNTU_2204_AMD64, True),
        (Target(os="linux"), UBUNTU_2204_AMD64, True),
        (Target(os="windows"), UBUNTU_2204_AMD64, False),
        (Target(os="linux", arch="arm64"), UBUNTU_2204_AMD64, False),
        (Target(os="linux", arch="amd64"), BaseTarget(os="linux"), True),  # empty on the base side matches
        (Target(arch="arm64", variant="v8"), BaseTarget("linux", "arm64", "v8"), True),
        (Target(arch="arm64", variant="v8"), BaseTarget("linux", "arm64", "v7"), False),
        (Target(arch="arm64", variant="v8"), BaseTarget("linux", "arm64", ""), True),
        (Target(arch="arm64"), BaseTarget("linux", "arm64", "v7"), True),
        (Target(distros=(Distro("ubuntu", "22.04"),)), UBUNTU_2204_AMD64, True),
        (Target(distros=(Distro("ubuntu", "20.04"), Distro("ubuntu", "22.04"))), UBUNTU_2204_AMD64, True),
        (Target(distros=(Distro("ubuntu", "20.04"),)), UBUNTU_2204_AMD64, False),
        (Target(distros=(Distro("debian", ""),)), BaseTarget("linux", "amd64", "", Distro("debian", "12")), True),
        (Target(distros=(Distro("ubuntu", ""),)), UBUNTU_2204_AMD64, True),
        (Target(distros=(Distro("debian", ""),)), UBUNTU_2204_AMD64, False),
        (Target(distros=(Distro("ubuntu", "22.04"),)), BaseTarget("linux", "amd64"), False),  # base has no distro
    ],
)
def test_target_matching(target: Target, base: BaseTarget, expected: bool) -> None:
    assert target.matches(base) is expected


def test_supports_target_any_of_several(tmp_path: Path) -> None:
    text = bp_toml(extra='[[targets]]\nos = "linux"\narch = "arm64"\n[[targets]]\nos = "linux"\narch = "amd64"\n')
    d = BuildpackDescriptor.parse(text)
    assert d.supports_target(UBUNTU_2204_AMD64)
    assert not d.supports_target(BaseTarget("linux", "s390x"))


def test_legacy_bionic_stack_is_ubuntu_1804_amd64() -> None:
    d = BuildpackDescriptor.parse(bp_toml(api="0.9", extra='[[stacks]]\nid = "io.buildpacks.stacks.bionic"\n'))
    assert d.stacks[0].id == "io.buildpacks.stacks.bionic"
    assert d.inferred_targets() == (Target("linux", "amd64", "", (Distro("ubuntu", "18.04"),)),)
    assert d.supports_target(BaseTarget("linux", "amd64", "", Distro("ubuntu", "18.04")))
    assert not d.supports_target(UBUNTU_2204_AMD64)
    assert not d.supports_target(BaseTarget("linux", "arm64", "", Distro("ubuntu", "18.04")))


def test_legacy_star_stack_matches_anything() -> None:
    d = BuildpackDescriptor.parse(bp_toml(api="0.9", extra='[[stacks]]\nid = "*"\n'))
    assert d.supports_target(BaseTarget("windows", "arm64", "v8", Distro("x", "1")))


def test_legacy_bionic_among_several_stacks_needs_api_010(tmp_path: Path) -> None:
    stacks = '[[stacks]]\nid = "io.buildpacks.stacks.bionic"\n[[stacks]]\nid = "io.buildpacks.stacks.jammy"\n'
    old = BuildpackDescriptor.parse(bp_toml(api="0.7", extra=stacks), tmp_path / "buildpack.toml")
    assert old.inferred_targets() == ()  # no bin/ either: matches anything (LC)
    new = BuildpackDescriptor.parse(bp_toml(api="0.10", extra=stacks))
    assert new.inferred_targets()[0].distros == (Distro("ubuntu", "18.04"),)


def test_targets_inferred_from_bin(tmp_path: Path) -> None:
    linux = tmp_path / "linux"
    write(linux / "bin" / "build", "#!/bin/sh\n")
    d = BuildpackDescriptor.load(write(linux / "buildpack.toml", bp_toml()))
    assert d.inferred_targets() == (Target(os="linux"),)
    assert d.supports_target(UBUNTU_2204_AMD64) and not d.supports_target(BaseTarget(os="windows"))

    windows = tmp_path / "windows"
    write(windows / "bin" / "build.exe", "")
    d = BuildpackDescriptor.load(write(windows / "buildpack.toml", bp_toml()))
    assert d.inferred_targets() == (Target(os="windows"),)
    assert d.inferred_targets(linux) == (Target(os="linux"),)  # an explicit directory wins

    bare = BuildpackDescriptor.load(write(tmp_path / "bare" / "buildpack.toml", bp_toml()))
    assert bare.inferred_targets() == () and bare.supports_target(BaseTarget(os="plan9"))


# --- extension.toml -----------------------------------------------------------------------------------------------


def test_extension_descriptor(tmp_path: Path) -> None:
    text = 'api = "0.12"\n[extension]\nid = "example/apt"\nversion = "0.1.0"\nname = "apt"\n[metadata]\nk = "v"\n'
    ext_dir = tmp_path / "ext"
    write(ext_dir / "bin" / "generate", "")
    ext = ExtensionDescriptor.load(write(ext_dir / "extension.toml", text))
    assert (ext.id, ext.version, ext.info.name, ext.metadata) == ("example/apt", "0.1.0", "apt", {"k": "v"})
    assert ext.inferred_targets() == (Target(os="linux"),)
    assert not ext.supports_target(BaseTarget(os="windows"))
    ext.dump(tmp_path / "out" / "extension.toml")
    assert ExtensionDescriptor.load(tmp_path / "out").to_dict() == ext.to_dict()
    with pytest.raises(SpecFileError, match="'extension'"):
        ExtensionDescriptor.parse(bp_toml(), "/e.toml")
    bad = text + '[[order]]\n[[order.group]]\nid = "x"\nversion = "1"\n'
    with pytest.raises(SpecFileError, match="'order'"):
        ExtensionDescriptor.parse(bad, "/e.toml")


# --- lookup -------------------------------------------------------------------------------------------------------


def install(root: Path, bp_id: str, version: str, declared_id: str | None = None) -> None:
    escaped = bp_id.replace("/", "_")
    write(root / escaped / version / "buildpack.toml", bp_toml(declared_id or bp_id, version))


def test_find_buildpack_exact_version(tmp_path: Path) -> None:
    install(tmp_path, "example/node", "1.2.3")
    install(tmp_path, "example/node", "1.10.0")
    found = find_buildpack(tmp_path, "example/node", "1.2.3")
    assert (found.id, found.version) == ("example/node", "1.2.3")
    assert found.path == tmp_path / "example_node" / "1.2.3"


def test_find_buildpack_picks_the_only_or_highest_version(tmp_path: Path) -> None:
    install(tmp_path, "solo", "0.0.1")
    assert find_buildpack(tmp_path, "solo").version == "0.0.1"
    for version in ("1.2.3", "1.10.0", "1.9.9", "1.10.0-rc1"):
        install(tmp_path, "example/node", version)
    (tmp_path / "example_node" / "9.9.9").mkdir()  # a directory without buildpack.toml does not count
    assert find_buildpack(tmp_path, "example/node").version == "1.10.0"


def test_version_key_orders_like_semver() -> None:
    ordered = ["0.9.0", "1.0.0-rc1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"]
    assert sorted(reversed(ordered), key=version_key) == ordered


def test_find_buildpack_not_found_names_id_version_and_dir(tmp_path: Path) -> None:
    install(tmp_path, "example/node", "1.2.3")
    with pytest.raises(NotFoundError) as err:
        find_buildpack(tmp_path, "example/node", "2.0.0")
    assert "example/node@2.0.0" in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(NotFoundError) as err:
        find_buildpack(tmp_path, "example/ruby")
    assert "example/ruby" in str(err.value) and str(tmp_path) in str(err.value)


def test_find_buildpack_refuses_a_descriptor_in_the_wrong_place(tmp_path: Path) -> None:
    install(tmp_path, "example/node", "1.2.3", declared_id="example/other")
    with pytest.raises(SpecFileError, match=r"key 'buildpack\.id'.*example/other"):
        find_buildpack(tmp_path, "example/node", "1.2.3")


def test_find_extension(tmp_path: Path) -> None:
    text = 'api = "0.12"\n[extension]\nid = "example/apt"\nversion = "0.1.0"\n'
    write(tmp_path / "example_apt" / "0.1.0" / "extension.toml", text)
    assert find_extension(tmp_path, "example/apt").version == "0.1.0"
    with pytest.raises(NotFoundError, match="extension example/apt@9"):
        find_extension(tmp_path, "example/apt", "9")


# --- API versions (§1.2, §1.3) ------------------------------------------------------------------------------------


def test_api_version_parse_and_compare() -> None:
    assert ApiVersion.parse("0.12") == ApiVersion(0, 12)
    assert ApiVersion.parse("1") == ApiVersion(1, 0) == ApiVersion.parse("1.0")
    assert str(ApiVersion.parse("v0.9")) == "0.9"
    assert ApiVersion.parse("0.9") < ApiVersion.parse("0.10") < ApiVersion.parse("1")
    assert ApiVersion.parse("0.12").at_least("0.12") and ApiVersion.parse("0.11").less_than("0.12")
    for bad in ("", "0.1.2", "x", "1.", "0.a"):
        with pytest.raises(ApiVersionError):
            ApiVersion.parse(bad)


def test_supported_api_lists() -> None:
    assert [str(v) for v in SUPPORTED_PLATFORM_APIS] == [f"0.{n}" for n in range(7, 16)]
    assert [str(v) for v in SUPPORTED_BUILDPACK_APIS] == [f"0.{n}" for n in range(7, 13)]


@pytest.mark.parametrize("value", [None, "", "  "])
def test_platform_api_unset_exits_11(value: str | None) -> None:
    with pytest.raises(UnsupportedApiError) as err:
        check_platform_api(value)
    assert err.value.exit_code == 11
    assert "CNB_PLATFORM_API" in str(err.value) and "0.15" in str(err.value)


@pytest.mark.parametrize("value", ["0.6", "0.16", "1", "latest"])
def test_platform_api_unsupported_exits_11(value: str) -> None:
    with pytest.raises(UnsupportedApiError) as err:
        check_platform_api(value)
    assert err.value.exit_code == 11
    assert repr(value) in str(err.value) and "0.7, 0.8" in str(err.value)


def test_platform_api_supported() -> None:
    assert check_platform_api("0.15") == ApiVersion(0, 15)
    assert check_platform_api("0.7") == ApiVersion(0, 7)


@pytest.mark.parametrize("value", [None, "0.6", "0.13", "2", "nope"])
def test_buildpack_api_unsupported_exits_12(value: str | None) -> None:
    with pytest.raises(UnsupportedApiError) as err:
        check_buildpack_api(value, "buildpack example/node@1.2.3")
    assert err.value.exit_code == 12
    assert "example/node@1.2.3" in str(err.value) and "0.12" in str(err.value)


def test_buildpack_api_supported() -> None:
    assert check_buildpack_api("0.10", "buildpack x@1") == ApiVersion(0, 10)


def test_major_versions_support_lower_minors_and_deprecation_mode() -> None:
    supported = (ApiVersion(0, 9), ApiVersion(1, 2))
    assert check_platform_api("1.1", supported=supported) == ApiVersion(1, 1)
    with pytest.raises(UnsupportedApiError):
        check_platform_api("1.3", supported=supported)
    with pytest.raises(UnsupportedApiError):
        check_platform_api("0.8", supported=supported)
    deprecated = (ApiVersion(0, 9),)
    assert check_platform_api("0.9", supported=supported, deprecated=deprecated) == ApiVersion(0, 9)
    with pytest.raises(UnsupportedApiError, match="deprecated") as err:
        check_platform_api("0.9", supported=supported, deprecated=deprecated, deprecation_mode="error")
    assert err.value.exit_code == 11


def test_base_target_from_flat_fields() -> None:
    assert BaseTarget.from_fields("linux", "arm64", "v8") == BaseTarget("linux", "arm64", "v8", None)
    assert BaseTarget.from_fields("linux", distro_name="ubuntu", distro_version="22.04").distro == Distro(
        "ubuntu", "22.04"
    )
