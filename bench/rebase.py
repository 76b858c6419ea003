"""Rebase benchmarks (issue 5 item 1), measured in one run on this machine. Not a pass/fail test.

A local ``docker-registry`` on 127.0.0.1 holds the busybox run image and two builds of the same Procfile app, one
whose app layer is 1 MB and one whose app layer is 1 GB (a random file in the app dir). The "OS update" is the run
image plus one small layer, pushed under the same name.

(a) ``cnb rebase --publish`` of the 1 GB app versus the 1 MB app: no app layer moves, so the time should not depend
    on its size. Each rebase alternates between the two run images (by digest), so every run writes a new manifest.
    Median CLI wall time (Python start-up included) and in-process time. Target: ratio <= 1.2.
(b) ``cnb rebase --publish`` of the 1 GB app versus a full rebuild of the same app on the new base:
    ``cnb lifecycle create`` from scratch (empty layers dir, no cache, empty layer cache) pushed to a repository
    that does not hold the layers yet, as on a fresh CI runner. Target: <= 5 %. A warm rebuild (same machine, same
    repository: layer cache and registry blobs reused) is printed for comparison.

Run: ``.venv/bin/python bench/rebase.py [--big-mb 1024] [--small-mb 1] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(REPO))

from cnbplatform.lifecycle.common import NullReporter  # noqa: E402
from cnbplatform.platform.context import context_from_env  # noqa: E402
from cnbplatform.platform.images import inspect_image  # noqa: E402
from cnbplatform.platform.rebase import RebaseRequest, run_rebase  # noqa: E402
from tests.support.rebase import write_updated_run_image  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

CNB = os.fspath(Path(sys.executable).with_name("cnb"))
PROCFILE = "web: ls -l data.bin\n"
ORDER = '[[order]]\n[[order.group]]\nid = "cnb/procfile"\nversion = "0.1.0"\n'


def cnb(env: dict[str, str], *args: str) -> float:
    """Run ``cnb -q ARGS``; return its wall time."""
    started = time.perf_counter()
    done = subprocess.run([CNB, "-q", *args], env=env, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"cnb {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def random_file(path: Path, size_mb: int) -> None:
    with open(path, "wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1024 * 1024))


def project(work: Path, name: str, size_mb: int, run_image: str) -> Path:
    root = work / name
    shutil.copytree(REPO / "buildpacks/procfile", root / "buildpacks/cnb_procfile/0.1.0")
    (root / "app").mkdir(parents=True)
    (root / "app/Procfile").write_text(PROCFILE)
    random_file(root / "app/data.bin", size_mb)
    (root / "platform").mkdir()
    (root / "order.toml").write_text(ORDER)
    (root / "run.toml").write_text(f'[[images]]\nimage = "{run_image}"\n')
    return root


def create(env: dict[str, str], root: Path, output: str) -> float:
    """``cnb lifecycle create`` with a fresh layers dir and no cache; returns its wall time."""
    shutil.rmtree(root / "layers", ignore_errors=True)
    (root / "layers").mkdir()
    return cnb(
        {**env, "CNB_PLATFORM_API": "0.15"}, "lifecycle", "create",
        "--app", os.fspath(root / "app"), "--layers", os.fspath(root / "layers"),
        "--platform", os.fspath(root / "platform"), "--buildpacks", os.fspath(root / "buildpacks"),
        "--order", os.fspath(root / "order.toml"), "--run", os.fspath(root / "run.toml"),
        "--sandbox", "bwrap", "--build-image", "tiny-build", output,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--small-mb", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cnb-bench-rebase-"))
    registry = start_registry(work / "registry")
    try:
        home = work / "home"
        env = {"CNB_HOME": os.fspath(home), "PATH": "/usr/bin:/bin", "HOME": os.fspath(work)}
        ctx = context_from_env(env)
        repo = f"{registry.host}/bench"
        print(f"registry {registry.url}, work dir {work}")
        cnb(env, "base", "create", "--config", os.fspath(REPO / "builders/tiny/base.toml"),
            "--build-image", "tiny-build", "--run-image", "tiny-run")  # fmt: skip
        cnb(env, "image", "copy", "tiny-run", f"{repo}/run:latest")
        old_run = inspect_image(ctx, f"{repo}/run:latest").descriptor.digest
        sizes = {"small": options.small_mb, "big": options.big_mb}
        roots = {kind: project(work, kind, mb, f"{repo}/run") for kind, mb in sizes.items()}
        for kind, root in roots.items():
            seconds = create(env, root, f"{repo}/app-{kind}:latest")
            print(f"first build of the {sizes[kind]} MB app: {seconds:.2f} s")
        write_updated_run_image(home, "tiny-run", "tiny-run-updated")
        cnb(env, "image", "copy", "tiny-run-updated", f"{repo}/run:latest")
        new_run = inspect_image(ctx, f"{repo}/run:latest").descriptor.digest

        cli: dict[str, list[float]] = {kind: [] for kind in sizes}
        inproc: dict[str, list[float]] = {kind: [] for kind in sizes}
        for round_ in range(options.repeat):
            for kind in sizes:
                target = f"{repo}/run@{new_run if round_ % 2 == 0 else old_run}"
                cli[kind].append(cnb(env, "rebase", "--publish", f"{repo}/app-{kind}", "--run-image", target))
                target = f"{repo}/run@{old_run if round_ % 2 == 0 else new_run}"
                started = time.perf_counter()
                run_rebase(ctx, RebaseRequest(f"{repo}/app-{kind}", run_image=target, publish=True), NullReporter())
                inproc[kind].append(time.perf_counter() - started)
        rebase_big = statistics.median(cli["big"])
        print(f"\n(a) cnb rebase --publish, median of {options.repeat} (CLI wall / in-process):")
        for kind, mb in sizes.items():
            wall, inside = statistics.median(cli[kind]), statistics.median(inproc[kind])
            print(f"    {mb:>5} MB app layer: {wall:.3f} s / {inside:.3f} s")
        ratio_cli = rebase_big / statistics.median(cli["small"])
        ratio_inproc = statistics.median(inproc["big"]) / statistics.median(inproc["small"])
        print(
            f"    ratio {options.big_mb} MB / {options.small_mb} MB: {ratio_cli:.2f} CLI, {ratio_inproc:.2f} in-process"
        )
        print("    (target <= 1.2)")

        shutil.rmtree(home / "layer-cache", ignore_errors=True)
        shutil.rmtree(home / "blobs", ignore_errors=True)
        full = create(env, roots["big"], f"{repo}/rebuild-{time.time_ns()}:latest")
        warm = create(env, roots["big"], f"{repo}/app-big:latest")
        print(f"\n(b) full rebuild of the {options.big_mb} MB app on the new base: {full:.2f} s"
              f" (warm rebuild, caches and registry blobs reused: {warm:.2f} s)")  # fmt: skip
        inside = statistics.median(inproc["big"])
        print(f"    rebase / full rebuild: {100 * rebase_big / full:.1f} % CLI, {100 * inside / full:.1f} % in-process")
        print("    (target <= 5 %)")
        print(f"    rebase / warm rebuild: {100 * rebase_big / warm:.1f} %")
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
