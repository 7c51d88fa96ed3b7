"""Entry point: ``python tools/bench [options]``.

Running a directory puts the directory itself first on sys.path. The modules import
each other as the package ``bench``, so its parent (``tools/``) takes that place,
and no module here can shadow a standard-library one.
"""

import sys
from pathlib import Path

_here = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]
sys.path.insert(0, str(_here.parent))

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
