"""``cnb resolve`` at scale: 1,200 references to 300 tagged images in a registry this script starts.

    .venv/bin/python bench/resolve.py [--images 300] [--refs 1200] [--parallel 16] [--repeat 3] [--go-resolver BIN]

It pushes one small layer and config, then 300 distinct manifests (30 repositories x 10 tags) with cnb's
registry client, writes a YAML stream of Deployments whose 1,200 ``image`` keys name those 300 tags (each image
four times, written two ways), and runs the whole ``cnb resolve`` command (Python start-up included). It prints
wall time, time per unique image, and the registry access log's manifest requests per unique image by method.
Targets: one ``HEAD`` per unique image and no ``GET``; the pool is bounded by ``--parallel``. With
``--go-resolver BIN`` (or, when ``go`` is on PATH, ``bench/goresolver`` built here: Go standard library only,
HEAD requests on a goroutine pool and a text rewrite, no YAML parsing: a lower bound for a Go resolver) it also
times a Go program on the same YAML file (``BIN -f FILE``); without Go it prints the issue's reference (kbld
resolves this set in about 1.3 s on the same kind of machine). ``--kbld BIN`` times kbld itself on the same file
(it vendors its modules: ``go build -mod=vendor ./cmd/kbld`` in its checkout builds with Debian 12's Go 1.19).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(REPO))

from cnbplatform.oci import mediatypes as mt  # noqa: E402
from cnbplatform.oci.digest import sha256_bytes  # noqa: E402
from cnbplatform.oci.registry import RegistryClient  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

KBLD_REFERENCE_SECONDS = 1.3
_MANIFEST_LINE = re.compile(r'"(GET|HEAD) /v2/[^ ]+/manifests/[^ ]+ HTTP')


def push_images(host: str, count: int) -> list[str]:
    """*count* tagged images sharing one layer and config; their ``host/repo:tag`` names."""
    layer = b"bench layer\n" * 10
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(layer)]}}).encode()  # fmt: skip
    names = []
    with RegistryClient(host) as client:
        repos = max(1, count // 10)
        for r in range(repos):
            repo = f"bench/app{r:03d}"
            for blob in (layer, config):
                client.upload_blob(
                    repo, sha256_bytes(blob), len(blob), lambda blob=blob: __import__("io").BytesIO(blob)
                )
        for i in range(count):
            repo = f"bench/app{i % repos:03d}"
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256_bytes(config), "size": len(config)},
                "layers": [{"mediaType": mt.OCI_LAYER, "digest": sha256_bytes(layer), "size": len(layer)}],
                "annotations": {"n": str(i)},
            }
            tag = f"v{i}"
            client.put_manifest(repo, tag, json.dumps(manifest).encode(), mt.OCI_MANIFEST)
            names.append(f"{host}/{repo}:{tag}")
    return names


def write_yaml(path: Path, names: list[str], refs: int) -> None:
    per_doc = 4
    lines = []
    for d in range(refs // per_doc):
        lines += ["---", "apiVersion: apps/v1", "kind: Deployment", f"metadata: {{name: app{d}}}", "spec:",
                  "  template:", "    spec:", "      containers:"]  # fmt: skip
        for c in range(per_doc):
            name = names[(d * per_doc + c) % len(names)]
            lines.append(f"      - {{name: c{c}, image: '{name}'}}")
    path.write_text("\n".join(lines) + "\n")


def manifest_requests(log: str) -> dict[str, int]:
    counts = {"HEAD": 0, "GET": 0}
    for match in _MANIFEST_LINE.finditer(log):
        counts[match.group(1)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--refs", type=int, default=1200)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--go-resolver", type=Path, default=None)
    parser.add_argument("--kbld", type=Path, default=None, help="a kbld binary to time on the same file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnb-bench-resolve-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            names = push_images(registry.host, args.images)
            source = work / "refs.yml"
            write_yaml(source, names, args.refs)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CNB_", "DOCKER_"))}
            env.update(CNB_HOME=str(work / "home"), PYTHONPATH=os.fspath(REPO))
            command = [sys.executable, "-m", "cnbplatform", "-q", "resolve", "-f", str(source), "-o",
                       str(work / "out.yml"), "--parallel", str(args.parallel)]  # fmt: skip
            times, per_run = [], []
            for _ in range(args.repeat):
                before = manifest_requests(registry.log_text())
                started = time.perf_counter()
                subprocess.run(command, env=env, check=True, cwd=REPO)
                times.append(time.perf_counter() - started)
                after = manifest_requests(registry.log_text())
                per_run.append({k: after[k] - before[k] for k in after})
            resolved = sum(
                1 for line in (work / "out.yml").read_text().splitlines() if "image: " in line and "@sha256:" in line
            )
            best = min(times)
            print(f"cnb resolve: {args.refs} references, {len(names)} unique images, --parallel {args.parallel}")
            print(f"  wall time      best {best:.2f}s  median {statistics.median(times):.2f}s  ({args.repeat} runs)")
            print(f"  per unique     {best / len(names) * 1000:.2f} ms")
            last = per_run[-1]
            print(f"  manifest requests per unique image: HEAD {last['HEAD'] / len(names):.2f}, "
                  f"GET {last['GET'] / len(names):.2f}")  # fmt: skip
            print(f"  references pinned in the output: {resolved}")
            go = shutil.which("go")
            if args.go_resolver is None and go is not None:
                args.go_resolver = work / "goresolver"
                subprocess.run([go, "build", "-o", str(args.go_resolver), "."], cwd=REPO / "bench" / "goresolver",
                               env={**os.environ, "GOCACHE": str(work / "gocache"), "GOFLAGS": "-mod=mod"},
                               check=True)  # fmt: skip
            if args.kbld is not None:
                kbld_times = []
                for _ in range(args.repeat):
                    before = manifest_requests(registry.log_text())
                    started = time.perf_counter()
                    subprocess.run([str(args.kbld), "-f", str(source), "--registry-insecure"], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
                    kbld_times.append(time.perf_counter() - started)
                    after = manifest_requests(registry.log_text())
                kbld_best = min(kbld_times)
                print(f"  kbld           best {kbld_best:.2f}s  median {statistics.median(kbld_times):.2f}s  "
                      f"ratio cnb/kbld {best / kbld_best:.2f} (target <= 1.5)")  # fmt: skip
                heads, gets = after["HEAD"] - before["HEAD"], after["GET"] - before["GET"]
                print(f"  kbld manifest requests per unique image: HEAD {heads / len(names):.2f}, "
                      f"GET {gets / len(names):.2f}")  # fmt: skip
            if args.go_resolver is not None:
                go_times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    subprocess.run([str(args.go_resolver), "-f", str(source)], check=True, stdout=subprocess.DEVNULL)
                    go_times.append(time.perf_counter() - started)
                ratio = best / min(go_times)
                print(f"  Go resolver    best {min(go_times):.2f}s  ratio cnb/Go {ratio:.2f} (target <= 1.5)")
            elif args.kbld is None:
                print(f"  no Go resolver given; the issue's reference: kbld {KBLD_REFERENCE_SECONDS}s, "
                      f"ratio {best / KBLD_REFERENCE_SECONDS:.2f} (target <= 1.5)")  # fmt: skip
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
