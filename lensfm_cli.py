"""The `lensfm` console script: runs `lensfm_hf/cli.py` without importing the `lensfm_hf` package first.

Why: `import lensfm_hf` registers its classes with transformers, which loads torch and transformers (6-10 s on a
small CPU). The parser needs neither, so `lensfm --help` and argument errors come back at once; a command imports
what it uses (relative imports inside cli.py resolve against the real package when they run).
"""

import importlib.util
import sys
from pathlib import Path


def main(argv=None) -> int:
    module = sys.modules.get("lensfm_hf.cli")
    if module is None:
        package = importlib.util.find_spec("lensfm_hf")  # locates the package without executing its __init__
        path = Path(next(iter(package.submodule_search_locations))) / "cli.py"
        spec = importlib.util.spec_from_file_location("lensfm_hf.cli", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module.main(argv)


if __name__ == "__main__":
    sys.exit(main())
