"""cnb/python build (Buildpack API 0.12; CNB-SPEC §3.3 contract, §3.4 layer tomls, §3.5 launch.toml, §3.7 SBOM,
§3.8 env files), in one run of the build image's ``python3`` (``bin/build`` execs it). Standard library only.

Layers of ``<layers>/cnb_python``:

- ``venv/`` (launch, build, cache): the app's virtualenv; metadata = fingerprint of the requirements + python.
  Same fingerprint: reused as restored, nothing runs ("reusing venv"); the SBOM restored with it
  (``venv.sbom.cdx.json``) is kept when its sha256 is the one recorded in the metadata. Changed: updated in place
  (only what differs is uninstalled or installed), never rebuilt from scratch while the python is the same.
- ``wheels/`` (cache): the wheelhouse. The requirements are resolved against it and the local ``PIP_FIND_LINKS``
  directories (``resolve.py``); the wheels of the resolution are copied in, the others dropped, so a build without
  the network works as long as the wheels it needs were fetched once. Missing wheels are fetched with
  ``pip wheel`` (the one step that needs the network), then the resolution is made again.
- ``pip/`` (cache): only when the build image has no pip (>= 22.3): a venv holding pip, made offline by
  ``python3 -m venv`` (ensurepip). pip fetches wheels and does whatever ``resolve.py`` and ``installer.py`` do not
  handle (``sync.py``: an option in the requirements, an sdist, a conflict to backtrack on…), run by the venv's
  python (``__pip-runner__.py``), so ``venv/`` carries no pip.
- ``venv.sbom.cdx.json``: CycloneDX list of the venv's distributions (``sbom.py``).
"""

from __future__ import annotations

import os
import sys

try:  # CPython's own sha256 (3.11 and older): hashlib would load OpenSSL first, a few ms of every build
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from hashlib import sha256

# Only what a build that reuses the venv needs is imported here; the rest is imported where it is used.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import launch
import requirements

PREFIX = "cnb/python:"
# pip settings that leave the resolution against local wheels alone; any other PIP_* variable hands it to pip.
PIP_HARMLESS = {
    "PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CERT",
    "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_RETRIES", "PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT", "PIP_NO_INPUT",
    "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_PROGRESS_BAR", "PIP_ROOT_USER_ACTION", "PIP_NO_CACHE_DIR",
    "PIP_CACHE_DIR", "PIP_QUIET", "PIP_VERBOSE", "PIP_NO_COLOR", "PIP_ONLY_BINARY", "PIP_PREFER_BINARY",
    "PIP_CONFIG_FILE", "PIP_KEYRING_PROVIDER", "PIP_LOG", "PIP_BREAK_SYSTEM_PACKAGES",
}  # fmt: skip


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def fail(message: str) -> SystemExit:
    return SystemExit(f"{PREFIX} error: {message}")


def toml_values(path: str) -> dict[str, str]:
    """``key = "value"`` lines of a (restored) layer toml: the basic strings this buildpack writes."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    return dict(item for item in map(string_setting, text.split("\n")) if item is not None)


def string_setting(line: str) -> tuple[str, str] | None:
    """(key, value) of a ``key = "value"`` line whose value has no escapes, else None."""
    key, equals, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key or not key.replace("-", "").replace("_", "").isalnum() or not key.isascii():
        return None
    if len(value) < 2 or value[0] != '"' or value[-1] != '"' or '"' in value[1:-1] or "\\" in value:
        return None
    return key, value[1:-1]


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_if_changed(path: str, text: str) -> None:
    """Leave a file with the same content untouched: a new mtime would make the exporter hash the layer again."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return
    except OSError:
        pass
    write(path, text)


def rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def sha256_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return str(sha256(handle.read()).hexdigest())
    except FileNotFoundError:
        return ""


def pip_version(directory: str) -> str:
    """The ``__version__`` of the pip package at *directory* ("" when unknown)."""
    try:
        return toml_values(os.path.join(directory, "__init__.py")).get("__version__", "")
    except UnicodeError:
        return ""


def pip_usable(directory: str, version: str) -> str:
    """*directory* when it holds a pip >= 22.3 (it has ``__pip-runner__.py``, which another python can run)."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return ""
    ok = major_minor >= (22, 3) and os.path.isfile(os.path.join(directory, "__pip-runner__.py"))
    return directory if ok else ""


class Build:
    def __init__(self) -> None:
        self.bp_dir = os.environ.get("CNB_BUILDPACK_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        layers = os.environ.get("CNB_LAYERS_DIR")
        if not layers:
            raise fail("CNB_LAYERS_DIR is not set")
        self.layers = layers
        self.lib = os.path.join(self.bp_dir, "lib")
        self.app = os.getcwd()
        self.venv = os.path.join(layers, "venv")
        self.python = os.path.join(self.venv, "bin", "python")
        self.wheels = os.path.join(layers, "wheels")
        self.tool = os.path.join(layers, "pip")
        version = sys.version_info
        self.python_id = f"{version[0]}.{version[1]}.{version[2]}:{os.path.realpath(sys.executable)}"
        self.bp_version = toml_values(os.path.join(self.bp_dir, "buildpack.toml")).get("version", "unknown")
        self.pip_dir = ""

    # -- pip -------------------------------------------------------------------------------------------------------

    def find_pip(self) -> str:
        """The build image's pip when it has one, else the pip of the cache-only tool layer (made once)."""
        if self.pip_dir:
            return self.pip_dir
        if sys.flags.no_site:  # bin/build starts python3 with -S: the image's site-packages are needed now
            import site

            site.main()
        try:
            import pip  # the image's

            found = pip_usable(os.path.dirname(pip.__file__), pip.__version__)
        except ImportError:
            found = ""
        if found:
            rmtree(self.tool)
        else:
            tool_python = toml_values(os.path.join(self.layers, "pip.toml")).get("python")
            if os.path.exists(os.path.join(self.tool, "bin", "python")) and tool_python == self.python_id:
                found = self.tool_pip()
            if not found:
                say("creating the pip tool layer (python3 -m venv, offline)")
                rmtree(self.tool)
                import subprocess
                import venv as venvlib

                try:
                    venvlib.EnvBuilder(symlinks=True, with_pip=True).create(self.tool)
                except (OSError, subprocess.CalledProcessError) as exc:
                    why = "python3 -m venv could not install pip (is python3-venv in the build image?)"
                    raise fail(f"{why}: {exc}") from exc
                found = self.tool_pip()
                if not found:
                    raise fail("the pip installed by python3 -m venv is older than 22.3")
        say(f"pip {pip_version(found) or '?'} from {found}")
        home = os.environ.get("HOME", "")
        if not home or not os.access(home, os.W_OK):
            import tempfile

            os.environ["HOME"] = tempfile.mkdtemp()
        self.pip_dir = found
        return found

    def tool_pip(self) -> str:
        lib = os.path.join(self.tool, "lib")
        for name in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
            directory = os.path.join(lib, name, "site-packages", "pip")
            if os.path.isdir(directory) and pip_usable(directory, pip_version(directory)):
                return directory
        return ""

    # -- the venv ----------------------------------------------------------------------------------------------------

    def create_venv(self) -> None:
        import venv as venvlib

        rmtree(self.venv)
        try:
            venvlib.EnvBuilder(symlinks=True, with_pip=False).create(self.venv)
        except OSError as exc:
            raise fail(f"python3 -m venv --without-pip {self.venv} failed: {exc}") from exc

    def find_links(self) -> list[str]:
        """The local directories of ``PIP_FIND_LINKS``; raises Unsupported for anything pip would handle otherwise."""
        from resolve import Unsupported

        for name in os.environ:
            if name.startswith("PIP_") and name not in PIP_HARMLESS:
                raise Unsupported(f"{name} is set")
        config = os.environ.get("PIP_CONFIG_FILE", "")
        home = os.environ.get("HOME", "")
        xdg = os.environ.get("XDG_CONFIG_HOME", "") or os.path.join(home, ".config")
        files = [config, "/etc/pip.conf", "/etc/xdg/pip/pip.conf", os.path.join(home, ".pip", "pip.conf"),
                 os.path.join(xdg, "pip", "pip.conf"), os.path.join(self.venv, "pip.conf")]  # fmt: skip
        files += [os.path.join(d, "pip", "pip.conf") for d in os.environ.get("XDG_CONFIG_DIRS", "").split(":") if d]
        for path in [config] if config == os.devnull else files:  # devnull: pip reads no file at all
            if path and path != os.devnull and os.path.isfile(path):
                raise Unsupported(f"pip reads {path}")
        directories = []
        for link in os.environ.get("PIP_FIND_LINKS", "").split():
            if link.startswith("file:"):
                from urllib.parse import unquote, urlparse

                link = unquote(urlparse(link).path)
            elif "://" in link:
                raise Unsupported(f"find-links {link} is not a local directory")
            if os.path.isdir(link):
                directories.append(os.path.abspath(link))
            elif os.path.exists(link):
                raise Unsupported(f"find-links {link} is not a directory")
        return directories

    def fetch(self, requirements_file: str) -> None:
        """``pip wheel`` every wheel of the requirements into the wheelhouse (the step that needs the network)."""
        import sync

        done = sync.pip(self.find_pip(), "wheel", "--no-cache-dir", "--wheel-dir", self.wheels, "--find-links",
                        self.wheels, "--requirement", requirements_file)  # fmt: skip
        if done.returncode != 0:
            raise fail(
                f"pip could not download or build the wheels (exit {done.returncode}, see above); a build without "
                "the network needs every wheel in the cache layer"
            )

    def sync(self, requirements_file: str | None) -> None:
        """Bring the venv in line with the requirements (none: an empty venv), with pip only when needed."""
        if requirements_file is None:  # uninstall everything, when pip is not needed for it
            import installer
            from resolve import Unsupported

            try:
                if installer.installed(installer.scheme(self.venv)):
                    self.sync_locally(None)
            except Unsupported as why:
                say(f"left the venv as it is ({why})")
            return
        os.makedirs(self.wheels, exist_ok=True)
        if self.sync_locally(requirements_file):
            return
        import subprocess

        done = subprocess.run([self.python, "-B", os.path.join(self.lib, "sync.py"), self.find_pip(), self.wheels,
                               requirements_file], check=False)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(done.returncode)

    def site_paths(self) -> dict[str, str]:
        import installer

        return installer.scheme(self.venv)

    def sync_locally(self, requirements_file: str | None) -> bool:
        """Resolve and install without pip (pip only fetches missing wheels); False when pip must do it all."""
        import zipfile

        import installer
        import resolve

        try:
            wanted = resolve.read_requirements(requirements_file) if requirements_file else []
            sources = [self.wheels, *self.find_links()] if wanted else []
            pk = None
            if wanted:
                try:
                    pk = resolve.load_packaging(self.find_pip())
                except Exception as exc:  # an unusual pip: it resolves itself
                    raise resolve.Unsupported(f"pip's packaging cannot be imported: {exc}") from exc
            try:
                chosen = resolve.Resolver(pk, sources).resolve(wanted) if wanted else []
            except resolve.Missing as why:
                assert requirements_file is not None
                say(f"the wheel cache cannot satisfy the requirements ({why}); fetching wheels")
                self.fetch(requirements_file)
                chosen = resolve.Resolver(pk, sources).resolve(wanted)
            paths = installer.scheme(self.venv)
            have = installer.installed(paths)
            want = {c.key: c for c in chosen}
            remove = [have[k] for k in sorted(have) if k not in want or have[k].version != want[k].version]
            add = [want[k] for k in sorted(want) if k not in have or have[k].version != want[k].version]
            for dist in remove:
                if not installer.can_uninstall(dist):
                    raise resolve.Unsupported(f"{dist.name} {dist.version} has no RECORD")
            tool = installer.Installer(self.venv, self.python)
            for item in add:
                tool.check(item.path)
        except (resolve.Unsupported, resolve.Missing) as why:
            say(f"pip resolves the requirements ({why})")
            return False
        except (OSError, UnicodeError, KeyError, ValueError, zipfile.BadZipFile) as exc:  # an odd file: pip decides
            say(f"pip resolves the requirements ({type(exc).__name__}: {exc})")
            return False
        gone = sorted(d.name for d in remove if resolve.canonical(d.name) not in want)
        try:
            if gone:
                say(f"removing {', '.join(gone)}")
            for dist in remove:
                installer.uninstall(dist, self.venv, paths)
            if add:
                say(f"installing {', '.join(sorted(f'{c.name}=={c.version}' for c in add))}")
                tool.finish([tool.install(c.path, c.requested) for c in add])
            pruned = self.keep_wheels([c.path for c in chosen])
        except (OSError, zipfile.BadZipFile, UnicodeError) as exc:
            raise fail(f"updating the venv failed: {exc}") from exc
        say(f"venv: {len(add)} installed, {len(gone)} removed, {len(want) - len(add)} unchanged"
            + (f"; {pruned} unused wheel(s) dropped from the cache" if pruned else ""))  # fmt: skip
        return True

    def keep_wheels(self, used: list[str]) -> int:
        """Copy the wheels of the resolution into the wheelhouse and drop the others; the number dropped."""
        import shutil

        names = set()
        for path in used:
            name = os.path.basename(path)
            names.add(name)
            target = os.path.join(self.wheels, name)
            if not os.path.exists(target):
                partial = target + ".partial"
                shutil.copyfile(path, partial)
                os.replace(partial, target)
        dropped = 0
        for entry in os.scandir(self.wheels):
            if entry.name not in names and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                dropped += 1
        return dropped

    # -- the build ---------------------------------------------------------------------------------------------------

    def run(self) -> None:
        say(f"python {self.python_id.split(':', 1)[0]} ({self.python_id.split(':', 1)[1]})")
        work = ""
        if not os.path.exists("requirements.txt") and os.path.isfile("pyproject.toml"):
            import tempfile  # for the requirements file made of pyproject.toml's dependencies

            work = tempfile.mkdtemp()
        try:
            self.build(work)
        finally:
            if work:
                rmtree(work)

    def build(self, work: str) -> None:
        source, req_sha, req_file = requirements.detect(self.app, work)
        if source == "none":
            say("no requirements (requirements.txt or pyproject.toml [project] dependencies)")
        else:
            say(f"requirements from {source} (sha256 {req_sha})")
        old = toml_values(os.path.join(self.layers, "venv.toml"))
        have_venv = os.access(self.python, os.X_OK)
        reused = have_venv and old.get("python") == self.python_id and old.get("requirements-sha256") == req_sha
        if reused:
            say("reusing venv (requirements unchanged)")
        else:
            if have_venv and old.get("python") == self.python_id:
                say("updating the venv in place (requirements changed)")
            else:
                if os.path.lexists(self.venv):
                    say("the cached venv was made by another python; making a new one")
                say("creating venv")
                self.create_venv()
            self.sync(None if source == "none" else req_file)

        # Launch env: the venv's bin/ is on PATH by the spec (a launch layer's bin/); these make it a proper venv.
        for directory, name, value in (("env", "VIRTUAL_ENV.override", self.venv),
                                       ("env.launch", "PYTHONUNBUFFERED.default", "1")):  # fmt: skip
            os.makedirs(os.path.join(self.venv, directory), exist_ok=True)
            write_if_changed(os.path.join(self.venv, directory, name), value)

        sbom_path = os.path.join(self.layers, "venv.sbom.cdx.json")
        sbom_sha = sha256_file(sbom_path) if reused and old.get("buildpack-version") == self.bp_version else ""
        if sbom_sha and sbom_sha == old.get("sbom-sha256"):
            with open(sbom_path, encoding="utf-8") as handle:
                count = handle.read().count('"purl"')
            say(f"SBOM: {count} distribution(s) in venv.sbom.cdx.json (restored with the venv)")
        else:
            import sbom

            paths = self.site_paths()
            text = sbom.render(self.bp_version, [paths["purelib"], paths["platlib"]])
            write(sbom_path, text)
            sbom_sha = sha256(text.encode()).hexdigest()
            count = text.count('"purl"')
            say(f"SBOM: {count} distribution(s) in venv.sbom.cdx.json")

        metadata = {"requirements-source": source, "requirements-sha256": req_sha, "python": self.python_id,
                    "buildpack-version": self.bp_version, "sbom-sha256": sbom_sha}  # fmt: skip
        lines = ["[types]", "launch = true", "build = true", "cache = true", "", "[metadata]"]
        lines += [f"{key} = {launch.quoted(value)}" for key, value in metadata.items()]
        write(os.path.join(self.layers, "venv.toml"), "\n".join(lines) + "\n")
        # The wheel cache and the pip tool are declared again every build, or the lifecycle would drop them (§3.4).
        if os.path.isdir(self.wheels):
            write(os.path.join(self.layers, "wheels.toml"), "[types]\ncache = true\n")
        if os.path.isdir(self.tool):
            write(os.path.join(self.layers, "pip.toml"),
                  f"[types]\ncache = true\n\n[metadata]\npython = {launch.quoted(self.python_id)}\n")  # fmt: skip

        text, message = launch.render(self.app, self.venv)
        print(message, file=sys.stderr, flush=True)
        write(os.path.join(self.layers, "launch.toml"), text)


if __name__ == "__main__":
    Build().run()
