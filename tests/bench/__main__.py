"""`python -m tests.bench [NAME ...]`: run the benchmarks and keep their numbers.

Each `tests/bench/bench_<name>.py` exposes `run() -> dict`: it prints its own markdown
table and returns JSON-able results, written to `bench-results/<name>.json`. Benchmarks
are not tests: they assert nothing about time, they measure and report.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

import tests.bench as pkg


def main(argv: list[str]) -> int:
    names = argv or sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules(pkg.__path__)
                           if m.name.startswith("bench_"))
    out_dir = Path("bench-results")
    out_dir.mkdir(exist_ok=True)
    failed = []
    for name in names:
        print(f"\n## {name}\n", flush=True)
        started = time.time()
        try:
            result = importlib.import_module(f"tests.bench.bench_{name}").run()
        except Exception as exc:  # noqa: BLE001 - report and go on to the next benchmark
            print(f"benchmark {name} failed: {exc!r}", file=sys.stderr)
            failed.append(name)
            continue
        result = {"benchmark": name, "started_at": started, "seconds": round(time.time() - started, 1), **result}
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(result, indent=2, default=str))
        print(f"\n(wrote {path})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
