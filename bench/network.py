"""What the build network costs (issue 9 item 7), measured in one run on this machine. Not a pass/fail test.

A build runs ``bin/detect`` and ``bin/build`` of every buildpack in the bwrap sandbox. Under the default network
(``private``) the sandbox starts one network namespace with pasta per build, on the first run that has the
network, and every run joins it with ``nsenter``. Rows, each the median of ``--runs`` runs of ``/bin/true`` in a
busybox root:

* ``none``: bwrap without the network (its own empty network namespace);
* ``host``: bwrap with this machine's network namespace (the old default);
* ``private``: runs after the first one (nsenter + bwrap);
* ``start``: starting and ending the build's network once (holder + pasta, reaped), the one-off cost per build;
  what one namespace *per executable* would add to every run instead.

Run: ``.venv/bin/python bench/network.py [--runs 30]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(REPO))

from cnbplatform.sandbox import BwrapSandbox, PrivateNetwork, RunRequest  # noqa: E402


def make_root(directory: Path) -> Path:
    root = directory / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    os.symlink("/bin/busybox", root / "bin" / "true")
    for name in ("etc", "tmp", "proc", "dev"):
        (root / name).mkdir()
    (root / "etc" / "resolv.conf").touch()
    return root


def timed_runs(sandbox: BwrapSandbox, runs: int, *, network: bool) -> list[float]:
    request = RunRequest(["/bin/true"], {"PATH": "/bin"}, "/", [], 1000, 1000, network=network)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = sandbox.run(request)
        times.append(time.perf_counter() - started)
        assert result.exit_code == 0, result.stderr
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnb-bench-network-") as tmp:
        root = make_root(Path(tmp))
        rows: dict[str, float] = {}
        host = BwrapSandbox(root, network="host")
        rows["none"] = statistics.median(timed_runs(host, args.runs, network=False))
        rows["host"] = statistics.median(timed_runs(host, args.runs, network=True))
        private = BwrapSandbox(root)
        first = timed_runs(private, 1, network=True)[0]
        rows["private"] = statistics.median(timed_runs(private, args.runs, network=True))
        private.close()
        starts = []
        for _ in range(max(3, args.runs // 5)):
            network = PrivateNetwork()
            started = time.perf_counter()
            network.enter()
            network.close()
            starts.append(time.perf_counter() - started)
        rows["start"] = statistics.median(starts)
    base = rows["host"]
    print(f"{'row':<10} {'ms':>8} {'x host':>8}")
    for name, seconds in rows.items():
        print(f"{name:<10} {seconds * 1000:8.1f} {seconds / base:8.2f}")
    print(f"first private run (network started on it): {first * 1000:.1f} ms")


if __name__ == "__main__":
    main()
