"""How long the fused kernels' first build takes: a fresh build into an empty cache directory.

The build happens once per machine (and whenever the sources, the flags or torch change); the
first forecast on a new machine includes it. Run from the repository root on an otherwise idle
machine:

    python benchmarks/kernel_build.py          # one fresh build, its wall time on stdout
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

BUILD = "from lstmkit.nn.kernels import fused; raise SystemExit(0 if fused.available() else 1)"


def main() -> int:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", BUILD], env={**os.environ, "TORCH_EXTENSIONS_DIR": cache},
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode:
        print(f"the build failed:\n{done.stderr}", file=sys.stderr)
        return 1
    print(f"fresh build of the fused kernels: {seconds:.1f} s on {os.cpu_count()} logical CPUs "
          "(including the Python start-up and the import)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
