"""The SDK's TypeScript declarations are checked against the module (tools/tsc/check.sh,
which tools/test.sh also runs): the real tree passes, and a copy whose declarations or
module drifted apart fails, so the check can fail."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "tools" / "tsc"
CHECK_S = 120


def check(root: Path) -> subprocess.CompletedProcess[str]:
    assert (TSC / "node_modules" / ".bin" / "tsc").exists(), (
        "the TypeScript compiler is missing: `npm ci` in tools/tsc (tools/test.sh does it)"
    )
    return subprocess.run(
        [str(root / "tools" / "tsc" / "check.sh")],
        capture_output=True,
        text=True,
        timeout=CHECK_S,
    )


def drifted_copy(tmp_path: Path) -> Path:
    """The check's files and www/ copied under tmp_path, the compiler linked in."""
    copy = tmp_path / "tools" / "tsc"
    copy.mkdir(parents=True)
    for path in TSC.iterdir():
        if path.is_file():
            shutil.copy2(path, copy / path.name)
    (copy / "node_modules").symlink_to(TSC / "node_modules")
    shutil.copytree(ROOT / "www", tmp_path / "www")
    return tmp_path


def test_the_declarations_match_the_module() -> None:
    result = check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("file", "before", "after", "complaint"),
    [
        # A declared method the module lacks.
        ("rtcserver.d.ts", "  leave(): void;", "  leave(): void;\n  mute(): void;", "'mute'"),
        # A declared return type the module does not give.
        ("rtcserver.d.ts", "send(data: unknown): number;", "send(data: unknown): string;", "send"),
        # A method of the module the declarations do not have.
        ("rtcserver.js", "  leave() {", "  hangUp() {}\n\n  leave() {", "conformance.ts"),
        # An export of the module that is not declared.
        ("rtcserver.js", "export { AuthError, ", "export { AuthError, refusal, ", "conformance.ts"),
    ],
)
def test_a_drift_between_declarations_and_module_fails_the_check(
    tmp_path: Path, file: str, before: str, after: str, complaint: str
) -> None:
    root = drifted_copy(tmp_path)
    target = root / "www" / "sdk" / file
    text = target.read_text()
    assert before in text, f"{before!r} is no longer in {file}: update this test"
    target.write_text(text.replace(before, after, 1))
    result = check(root)
    assert result.returncode != 0
    assert "error TS" in result.stdout
    assert complaint in result.stdout
