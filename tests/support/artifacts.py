"""The release artifacts, built once per session: `python -m build` makes the sdist and
then the wheel from it, and the wheel is installed without extras into a fresh
virtual environment, the way a user installs it."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]


def run(*cmd: str | Path, cwd: Path = ROOT, timeout: float = 600) -> str:
    """Run `cmd`, fail with its output unless it exits 0, return its stdout."""
    result = subprocess.run(
        [str(part) for part in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@attrs.frozen
class Artifacts:
    wheel: Path
    sdist: Path
    venv: Path  # the wheel installed, without extras

    @property
    def script(self) -> Path:
        """The `rtcserver` console script the wheel installed."""
        return self.venv / "bin" / "rtcserver"


def build_and_install(directory: Path) -> Artifacts:
    dist = directory / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    (wheel,) = dist.glob("rtcserver-*.whl")
    (sdist,) = dist.glob("rtcserver-*.tar.gz")
    env_dir = directory / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    return Artifacts(wheel=wheel, sdist=sdist, venv=env_dir)
