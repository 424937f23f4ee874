"""``socrec bench`` where ``benchmarks/`` is (a source checkout, an editable install run from anywhere)
and where it is not (an install from the wheel): the bench commands run, or say plainly why not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.cli.bench_source import NO_BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]

# What an installed package looks like to Python: ``socrec_online`` and ``streams`` found through a
# finder that knows only them (an editable install's finder, or site-packages for a wheel), run from a
# folder that is not the checkout, so the checkout itself is not on ``sys.path``.
_INSTALLED = """
import importlib.util, subprocess, sys
from pathlib import Path
HOME = Path(sys.argv[1])
class Installed:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in ("socrec_online", "streams"):
            return importlib.util.spec_from_file_location(
                name, HOME / name / "__init__.py", submodule_search_locations=[str(HOME / name)])
        return None
sys.meta_path.insert(0, Installed)
"""
_RUN = _INSTALLED + """
sys.argv = ["socrec", *sys.argv[2:]]
from streams.cli import main
main()
"""
# What a bench command does before its lazy import, then the import in this process and in a child
# process a bench starts (the memory bench runs each size in a fresh one).
_IMPORT = _INSTALLED + """
from streams.cli.bench_source import ensure_benchmarks
ensure_benchmarks()
import benchmarks.queries
print(benchmarks.queries.__file__)
subprocess.run([sys.executable, "-c", "import benchmarks.reliability"], check=True)
"""


def _socrec(home: Path, cwd: Path, *args: str, code: str = _RUN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code, str(home), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_wheel_install_says_the_benchmarks_run_from_a_checkout(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"  # the shipped packages only, as the wheel installs them
    site.mkdir()
    for pkg in ("socrec_online", "streams"):
        (site / pkg).symlink_to(ROOT / pkg, target_is_directory=True)
    for command in (["bench", "queries", "--out", str(tmp_path / "q.json")], ["bench", "reliability", "--help"]):
        done = _socrec(site, tmp_path, *command)
        assert done.returncode == 2, done.stderr
        assert NO_BENCHMARKS.split(";")[0] in " ".join(done.stderr.split()), done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "q.json").exists()
    done = _socrec(site, tmp_path, "config")  # the product itself still runs
    assert done.returncode == 0 and "SOCREC_BROKER=" in done.stdout, done.stderr


def test_an_editable_install_runs_the_benchmarks_of_its_checkout_from_anywhere(tmp_path: Path) -> None:
    done = _socrec(ROOT, tmp_path, "bench", "queries", "--help")
    assert done.returncode == 0, done.stderr
    assert "--out" in done.stdout
    done = _socrec(ROOT, tmp_path, code=_IMPORT)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == ROOT / "benchmarks" / "queries.py"
