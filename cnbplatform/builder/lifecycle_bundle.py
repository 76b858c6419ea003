"""``/cnb/lifecycle``: cnb's lifecycle as a self-contained bundle that runs in any Linux build image.

Tekton and kpack run the lifecycle that lives in the builder image, as ``/cnb/lifecycle/<phase>``, as the build
image's non-root user, with every capability dropped; the build image may have no Python (a busybox image) or
another libc. So the bundle brings its own everything, taken from the interpreter cnb runs on:

- ``lifecycle``: a small static executable (compiled with ``gcc -static`` when the bundle is made); ``analyzer``,
  ``detector``, ``restorer``, ``builder``, ``exporter``, ``creator``, ``rebaser`` and ``extender`` are symlinks to
  it. It execs the bundled dynamic loader with the bundled libraries (``--library-path``) on the bundled
  interpreter, isolated (``-I -S``), with the name it was started as: :mod:`cnbplatform.cli.golifecycle` then
  dispatches on that name;
- ``python/``: the interpreter, its shared libraries and those of every extension module (found with ``ldd``),
  the loader, the standard library as compiled modules in one zip (no tests, tkinter, idle, ensurepip…), the
  extension modules, and in ``site/`` cnbplatform and the few packages the phases import, compiled;
- ``launcher``: the POSIX ``sh`` launcher the exporter copies into app images (it runs in the run image);
- ``lifecycle.toml``: the APIs, as the Go lifecycle's tarball has it.

Making it takes seconds, so it is kept under ``$XDG_CACHE_HOME/cnb/lifecycle/<key>`` (``~/.cache``), keyed by the
content of everything that goes in.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from cnbplatform.errors import CnbError

BUNDLE_FORMAT = "1"
EXECUTABLES = ("analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender")
# what the phases import besides the standard library (found by importing every phase module and listing
# sys.modules); their own dependencies that are imported lazily are listed too
SITE_PACKAGES = (
    "httpx", "httpcore", "h11", "anyio", "sniffio", "certifi", "idna", "isal", "zstandard", "tomli_w", "rich",
    "pygments", "markdown_it", "mdurl", "click", "typing_extensions", "pathspec",
)  # fmt: skip
_STDLIB_SKIP = {
    "site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "lib-dynload", "__pycache__", "distutils", "venv", "unittest", "sqlite3", "dbm", "curses", "msilib",
}  # fmt: skip
_DYNLOAD_SKIP = re.compile(
    r"^(_tkinter|_test|xxlimited|_xxtest|_ctypes_test|_curses|_dbm|_gdbm|_sqlite3|xxsubtype|readline|nis|_crypt)"
)
# zstandard's CFFI backend: the C backend is the one imported
_SITE_SKIP = re.compile(r"^(_cffi\.cpython.*\.so|backend_cffi\.py)$")

ENTRY_C = r"""
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cnb's lifecycle: exec the bundled loader on the bundled interpreter with the name this was started as */
int main(int argc, char **argv) {
    static char dir[PATH_MAX], loader[PATH_MAX], libs[PATH_MAX], python[PATH_MAX], boot[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0) { perror("lifecycle: readlink /proc/self/exe"); return 1; }
    dir[n] = 0;
    *strrchr(dir, '/') = 0;
    const char *name = argc > 0 && argv[0] ? argv[0] : "lifecycle";
    const char *slash = strrchr(name, '/');
    if (slash) name = slash + 1;
    snprintf(loader, sizeof loader, "%s/python/lib/ld.so", dir);
    snprintf(libs, sizeof libs, "%s/python/lib", dir);
    snprintf(python, sizeof python, "%s/python/bin/python3", dir);
    snprintf(boot, sizeof boot, "%s/python/boot.py", dir);
    char **args = calloc((size_t)argc + 12, sizeof *args);
    if (!args) return 1;
    int i = 0;
    args[i++] = loader; args[i++] = "--library-path"; args[i++] = libs; args[i++] = "--argv0"; args[i++] = python;
    args[i++] = python; args[i++] = "-I"; args[i++] = "-S"; args[i++] = boot; args[i++] = (char *)name;
    for (int j = 1; j < argc; j++) args[i++] = argv[j];
    args[i] = NULL;
    execv(loader, args);
    perror("lifecycle: exec the bundled interpreter");
    return 127;
}
"""

BOOT_PY = """\
import sys
sys.path.append(sys.prefix + "/site")
sys.dont_write_bytecode = True
sys.argv = sys.argv[1:]
from cnbplatform.cli.golifecycle import main
main()
"""


class BundleError(CnbError):
    """The lifecycle bundle cannot be made on this machine."""


def cache_root(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or "~").expanduser() / ".cache")
    return Path(base) / "cnb" / "lifecycle"


def _version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _base_prefix() -> Path:
    return Path(sys.base_prefix)


def _interpreter() -> Path:
    path = _base_prefix() / "bin" / f"python{_version()}"
    if not path.is_file():
        raise BundleError(f"make the lifecycle bundle: no interpreter at {path}")
    return path


def _stdlib() -> Path:
    return Path(sysconfig.get_paths(vars={"installed_base": sys.base_prefix, "base": sys.base_prefix})["stdlib"])


def _dynload() -> Path:
    return _stdlib() / "lib-dynload"


def _package_roots() -> list[Path]:
    roots = [Path(__file__).resolve().parent.parent]  # cnbplatform
    for name in SITE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        roots.append(origin.parent if origin.name == "__init__.py" else origin)
    return roots


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "tests", "test"))
        for name in sorted(filenames):
            yield Path(dirpath) / name


def bundle_key() -> str:
    """A digest of everything that goes into the bundle."""
    digest = hashlib.sha256(f"{BUNDLE_FORMAT}\0{sys.version}\0{ENTRY_C}\0{BOOT_PY}".encode())
    for root in (*_package_roots(), _interpreter(), _dynload()):
        for path in _walk(root):
            if path.suffix in (".pyc", ".pyo"):
                continue
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:32]


def _pyc(source: bytes, display: str) -> bytes:
    """An unchecked hash-based .pyc (PEP 552): valid whatever the file times become in a layer."""
    code = compile(source, display, "exec", dont_inherit=True)
    flags = (1).to_bytes(4, "little")  # hash-based, not checked against a source
    return importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source) + marshal.dumps(code)


def _copy_package(root: Path, destination: Path) -> None:
    """*root* (a package dir or module file) into *destination*, each .py as a sourceless .pyc."""
    base = root.parent
    for path in _walk(root):
        relative = path.relative_to(base)
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if _SITE_SKIP.match(path.name):
            continue
        if path.suffix == ".py":
            display = f"/cnb/lifecycle/python/site/{relative}"
            target.with_suffix(".pyc").write_bytes(_pyc(path.read_bytes(), display))
        elif path.suffix not in (".pyc", ".pyi") and path.name != "py.typed":
            shutil.copy2(path, target)


def _stdlib_zip(target: Path) -> None:
    stdlib = _stdlib()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for dirpath, dirnames, filenames in os.walk(stdlib):
            dirnames[:] = sorted(d for d in dirnames if d not in _STDLIB_SKIP and not d.startswith("config-"))
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                path = Path(dirpath) / name
                relative = path.relative_to(stdlib)
                pyc = _pyc(path.read_bytes(), f"/cnb/lifecycle/python/lib/python{_version()}/{relative}")
                info = zipfile.ZipInfo(str(relative.with_suffix(".pyc")), date_time=(1980, 1, 1, 0, 0, 1))
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, pyc)


_LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(/\S+) \(0x[0-9a-f]+\)$")


def _shared_libraries(files: list[Path]) -> tuple[dict[str, Path], Path]:
    """The shared libraries *files* need (soname -> path) and the dynamic loader, as ``ldd`` finds them."""
    libraries: dict[str, Path] = {}
    loader: Path | None = None
    for path in files:
        done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            continue  # not dynamic
        for line in done.stdout.splitlines():
            match = _LDD_LINE.match(line)
            if not match:
                continue
            soname, found = match.group(1), Path(match.group(2))
            if soname is None:
                loader = found
            else:
                libraries[soname] = found
    if loader is None:
        raise BundleError("make the lifecycle bundle: ldd found no dynamic loader for the interpreter")
    return libraries, loader


def _strip(files: list[Path]) -> None:
    """Drop the debugging symbols (a third of the bundle); without ``strip`` the files stay as they are."""
    tool = shutil.which("strip")
    if tool is not None:
        subprocess.run([tool, "--strip-unneeded", *map(str, files)], capture_output=True, check=False)


def _entry_binary(target: Path, work: Path) -> None:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise BundleError("make the lifecycle bundle: no C compiler (gcc) to build the static entry program")
    source = work / "entry.c"
    source.write_text(ENTRY_C)
    done = subprocess.run(
        [compiler, "-static", "-Os", "-s", "-o", str(target), str(source)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise BundleError(f"make the lifecycle bundle: gcc -static: {last} (static libc: apt-get install libc6-dev)")


def make_bundle(target: Path) -> None:
    """Write the bundle's files into the new directory *target* (its ``/cnb/lifecycle``)."""
    from cnbplatform.builder.builder import lifecycle_toml
    from cnbplatform.launcher import launcher_script

    version = _version()
    python = target / "python"
    (python / "bin").mkdir(parents=True)
    lib = python / "lib"
    dynload = lib / f"python{version}" / "lib-dynload"
    dynload.mkdir(parents=True)
    interpreter = python / "bin" / "python3"
    shutil.copy2(_interpreter(), interpreter)
    # the landmark by which the interpreter finds its prefix (the modules themselves are in the zip)
    shutil.copy2(_stdlib() / "os.py", lib / f"python{version}" / "os.py")
    _stdlib_zip(lib / f"python{version.replace('.', '')}.zip")
    extensions = []
    for path in sorted(_dynload().glob("*.so")):
        if not _DYNLOAD_SKIP.match(path.name):
            shutil.copy2(path, dynload / path.name)
            extensions.append(dynload / path.name)
    site = python / "site"
    for root in _package_roots():
        _copy_package(root, site)
    extensions += sorted(site.rglob("*.so"))
    libraries, loader = _shared_libraries([_interpreter(), *extensions])
    for soname, path in sorted(libraries.items()):
        shutil.copy2(path, lib / soname)
    shutil.copy2(loader, lib / "ld.so")
    _strip([*lib.glob("*.so*"), *extensions, interpreter])
    (python / "boot.py").write_text(BOOT_PY)
    _entry_binary(target / "lifecycle", target)
    (target / "entry.c").unlink()
    for name in EXECUTABLES:
        (target / name).symlink_to("lifecycle")
    launcher = target / "launcher"
    launcher.write_bytes(launcher_script())
    launcher.chmod(0o755)
    (target / "lifecycle.toml").write_text(lifecycle_toml())


def bundle_dir(env: Mapping[str, str]) -> Path:
    """The bundle for this cnb and interpreter, made once and kept in the cache."""
    key = bundle_key()
    root = cache_root(env)
    final = root / key
    if (final / "lifecycle").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".making-", dir=root))
    try:
        make_bundle(work / "lifecycle")
        (work / "lifecycle").rename(final)
    except OSError as exc:
        if (final / "lifecycle").is_file():  # another process made it meanwhile
            return final
        raise BundleError(f"make the lifecycle bundle in {root}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
