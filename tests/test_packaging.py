"""The artifacts users get: the wheel and the sdist, built as a release builds them.

The slow tests build both with `python -m build` (the wheel from the sdist, so a
file the sdist lacks breaks the build), install the wheel without extras into a fresh
virtual environment, and run the `rtcserver` script from an empty directory: the
pages must come from inside the package, and two WebSocket clients must relay
through a room. The sdist must hold everything the repository holds, and its own
copy of the suite must collect and pass its quick tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

import rtcserver
from rtcserver import extras, settings
from tests.support.artifacts import Artifacts, run
from tests.support.client import make_pair
from tests.support.process import running_server

ROOT = Path(__file__).resolve().parents[1]
PAGES = (
    "index.html",
    "phone.html",
    "tutorial/index.html",
    "tutorial/client.js",
    "sdk/rtcserver.js",
    "sdk/rtcserver.d.ts",
    "examples/minimal.html",
)
# Made by builds and tools, never shipped: caches, virtual environments, node_modules.
UNTRACKED = {".git", ".venv", "build", "dist", "node_modules", "__pycache__", ".hypothesis"}
UNTRACKED_SUFFIXES = (".pyc", ".egg-info", "_cache")


def source_files() -> set[str]:
    """What the repository holds: git's list in a checkout, else the tree as unpacked."""
    if (ROOT / ".git").exists():
        return set(run("git", "ls-files").splitlines())
    files = set()
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if path.is_file() and not any(
            p in UNTRACKED or p.endswith(UNTRACKED_SUFFIXES) for p in parts
        ):
            files.add("/".join(parts))
    return files - {"PKG-INFO", "setup.cfg"}


# ------------------------------------------------------------------ quick checks


def test_every_package_in_the_tree_is_listed_in_pyproject() -> None:
    # The list is written by hand (www/ is mapped into it), so a new subpackage must be
    # added there, or the wheel would ship without it.
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    in_tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in ROOT.glob("rtcserver/**/__init__.py")
    }
    assert listed == in_tree | {"rtcserver.www"}


def test_from_a_checkout_the_pages_are_the_top_level_www() -> None:
    assert settings.bundled_pages() == ROOT / "www"
    assert all((settings.bundled_pages() / page).is_file() for page in PAGES)


def test_version_is_printed() -> None:
    out = run(sys.executable, "-m", "rtcserver", "--version")
    assert out == f"rtcserver {rtcserver.__version__}\n"


def test_a_missing_optional_module_is_named_in_one_line_with_its_extra() -> None:
    problem = extras.missing("cluster", "--redis", modules=("no_such_module_for_rtcserver",))
    assert problem is not None and "\n" not in problem
    assert "pip install 'rtcserver[cluster]'" in problem
    assert extras.missing("cluster", "--redis", modules=("json",)) is None


def test_devcert_without_cryptography_is_one_line_and_exit_2() -> None:
    # `sys.modules[name] = None` makes that import fail as if it were not installed.
    blocked = "import runpy, sys; sys.modules['cryptography'] = None; "
    script = str(ROOT / "tools" / "devcert.py")
    result = subprocess.run(
        [sys.executable, "-c", blocked + f"runpy.run_path({script!r}, run_name='__main__')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "pip install 'rtcserver[dev]'" in result.stderr


def test_bench_plot_without_matplotlib_is_one_line_and_exit_2_before_measuring(
    tmp_path: Path,
) -> None:
    blocked = "import runpy, sys; sys.modules['matplotlib'] = None; "
    bench = str(ROOT / "tools" / "bench")
    argv = ["bench", "--quick", "--plot", str(tmp_path / "latency.png")]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            blocked + f"sys.argv = {argv!r}; runpy.run_path({bench!r}, run_name='__main__')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "--plot needs matplotlib: pip install 'rtcserver[bench]' (or tools/setup-venv.sh bench)"
    ]


def test_every_extra_named_in_extras_exists_in_pyproject() -> None:
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert set(extras.EXTRAS) <= set(optional)


# ------------------------------------------------------------------ the artifacts


@pytest.mark.slow
def test_the_wheel_ships_the_pages_the_types_marker_and_the_license(
    artifacts: Artifacts,
) -> None:
    names = set(zipfile.ZipFile(artifacts.wheel).namelist())
    for page in PAGES:
        assert f"rtcserver/www/{page}" in names
    assert "rtcserver/py.typed" in names
    assert "rtcserver/server/openapi.json" in names  # served at /api/v1/openapi.json
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(name.startswith(("www/", "tests/", "tools/")) for name in names)


@pytest.mark.slow
def test_the_sdist_holds_everything_the_repository_holds(artifacts: Artifacts) -> None:
    with tarfile.open(artifacts.sdist) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = source_files() - members
    assert not missing, f"not in the sdist: {sorted(missing)}"


@pytest.mark.slow
def test_the_sdist_suite_collects_and_its_quick_tests_pass(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    with tarfile.open(artifacts.sdist) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.iterdir()
    # Run from the unpacked tree, so its own rtcserver/ and tests/ are the ones imported.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    checks = [
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"],
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            "tests/test_tokens.py",
            "tests/test_config.py",
            "tests/test_protocol.py",
        ],
        [sys.executable, "-c", "import rtcserver, sys; print(rtcserver.__file__)"],
    ]
    outputs = []
    for cmd in checks:
        result = subprocess.run(
            cmd, cwd=unpacked, capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    assert outputs[2].strip() == str(unpacked / "rtcserver" / "__init__.py")


@pytest.mark.slow
async def test_the_installed_script_serves_the_pages_and_relays_from_anywhere(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with running_server("--stun", "", program=[str(artifacts.script)], cwd=elsewhere) as srv:
        for page in PAGES:
            with urllib.request.urlopen(f"{srv.http_url}/{page}", timeout=10) as reply:
                assert reply.status == 200
                assert reply.read() == (ROOT / "www" / page).read_bytes()
        with urllib.request.urlopen(f"{srv.http_url}/?room=12", timeout=10) as reply:
            assert reply.read() == (ROOT / "www" / "index.html").read_bytes()
        async with contextlib.AsyncExitStack() as stack:
            creator, joiner, _ = await make_pair(stack, srv.ws_url)
            await creator.send('{"type":"offer","sdp":"from the wheel"}')
            assert await joiner.recv_text() == '{"type":"offer","sdp":"from the wheel"}'
            await joiner.send('{"type":"answer","sdp":"back"}')
            assert await creator.recv_text() == '{"type":"answer","sdp":"back"}'


@pytest.mark.slow
def test_the_installed_script_prints_its_version(artifacts: Artifacts) -> None:
    assert run(artifacts.script, "--version") == f"rtcserver {rtcserver.__version__}\n"


@pytest.mark.slow
def test_redis_without_the_cluster_extra_is_one_line_and_exit_2(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            artifacts.script,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--redis",
            "redis://127.0.0.1:9/0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'rtcserver[cluster]'" in lines[0]
