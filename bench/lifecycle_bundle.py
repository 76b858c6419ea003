"""The lifecycle bundle builders carry (/cnb/lifecycle): its size and the start-up of its phases.

    .venv/bin/python bench/lifecycle_bundle.py [--repeat 5]

Prints the bundle's size on disk and as a gzip-compressed tar (the layer), then, best of --repeat runs: the
bundled interpreter alone (``python -I -S -c pass`` through the bundled loader, the baseline), ``detector
-version``, and a no-op ``detector`` (one buildpack whose bin/detect exits 0) as uid 1000 (``setpriv``; the
phases refuse to run buildpacks as root). Targets: ≤ 60 MB compressed, a no-op detector ≤ 0.3 s.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnbplatform.builder.lifecycle_bundle import bundle_dir


def best(argv: list[str], repeat: int, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    source = bundle_dir(os.environ)
    print(f"bundle {source} ready in {time.perf_counter() - started:.1f}s (cached after the first run)")
    size = sum(p.lstat().st_size for p in source.rglob("*") if p.is_file() and not p.is_symlink())
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz", compresslevel=6) as archive:
        archive.add(source, arcname="cnb/lifecycle")
    print(f"size: {size / 1e6:.1f} MB on disk, {len(packed.getvalue()) / 1e6:.1f} MB compressed (target <= 60 MB)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        bundle = root / "lifecycle"
        shutil.copytree(source, bundle, symlinks=True)  # readable by uid 1000 wherever the cache is
        lib = bundle / "python" / "lib"
        python = bundle / "python" / "bin" / "python3"
        interpreter = [str(lib / "ld.so"), "--library-path", str(lib), str(python), "-I", "-S", "-c", "pass"]
        bare = best(interpreter, args.repeat)
        version = best([str(bundle / "detector"), "-version"], args.repeat)
        bp = root / "bps" / "t_noop" / "1.0"
        (bp / "bin").mkdir(parents=True)
        (bp / "buildpack.toml").write_text('api = "0.10"\n[buildpack]\nid = "t/noop"\nversion = "1.0"\n')
        (bp / "bin" / "detect").write_text("#!/bin/sh\nexit 0\n")
        (bp / "bin" / "build").write_text("#!/bin/sh\nexit 0\n")
        for script in ("detect", "build"):
            (bp / "bin" / script).chmod(0o755)
        (root / "order.toml").write_text('[[order]]\n[[order.group]]\nid = "t/noop"\nversion = "1.0"\n')
        for name in ("app", "layers", "platform", "home"):
            (root / name).mkdir()
        subprocess.run(["chown", "-R", "1000:1000", str(root)], check=True)
        prefix = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups"] if os.getuid() == 0 else []
        detect = [*prefix, str(bundle / "detector"), f"-app={root / 'app'}", f"-layers={root / 'layers'}",
                  f"-buildpacks={root / 'bps'}", f"-order={root / 'order.toml'}",
                  f"-platform={root / 'platform'}"]  # fmt: skip
        env = {"CNB_PLATFORM_API": "0.13", "HOME": str(root / "home"), "PATH": "/usr/bin:/bin"}
        noop = best(detect, args.repeat, env)
    print(f"baseline: bundled interpreter alone {bare:.3f}s")
    print(f"detector -version {version:.3f}s ({version / bare:.0f}x the baseline)")
    print(f"no-op detector {noop:.3f}s ({noop / bare:.0f}x the baseline; target <= 0.3 s)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
