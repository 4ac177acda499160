"""Runs every example of this folder with the given start methods and checks its
output against the "Output:" block of its docstring. Exit status 1 on a mismatch.

    python examples/python/run_all.py [fork spawn forkserver]
"""

import ast
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
PRELUDE = (
    "import sys, runpy, shoal; shoal.set_start_method(sys.argv[1], force=True); "
    "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


def expected(path: pathlib.Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.split("Output:\n", 1)[1].strip() + "\n"


def main() -> int:
    methods = sys.argv[1:] or ["fork", "spawn", "forkserver"]
    failed = 0
    for path in sorted(HERE.glob("*.py")):
        if path.name == "run_all.py":
            continue
        want = expected(path)
        for method in methods:
            try:
                out = subprocess.run(
                    [sys.executable, "-c", PRELUDE, method, str(path)],
                    capture_output=True, text=True, timeout=120, cwd=HERE, check=False,
                    env={**os.environ, "PYTHONPATH": str(HERE)},
                )
            except subprocess.TimeoutExpired:
                print(f"FAIL {path.name} [{method}]: timed out")
                failed += 1
                continue
            if out.returncode != 0 or out.stdout != want:
                failed += 1
                print(f"FAIL {path.name} [{method}] (exit {out.returncode})")
                print("  expected:\n" + want + "  got:\n" + out.stdout + out.stderr[-2000:])
            else:
                print(f"ok   {path.name} [{method}]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
