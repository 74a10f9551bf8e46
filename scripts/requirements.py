"""Print requirement lines for scripts/install (reads pyproject.toml; stdlib only).

--extra NAME     the optional-dependency group NAME
--faust          the pinned faust-streaming requirement alone
--faust-deps     also: the core dependencies without faust, plus faust's own
                 requirements without its click pin (read from the installed metadata)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import tomllib
from pathlib import Path

FAUST = "faust-streaming"


def _name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--faust", action="store_true")
    parser.add_argument("--faust-deps", action="store_true")
    args = parser.parse_args()
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    core: list[str] = project["dependencies"]
    if args.faust:
        print(next(r for r in core if _name(r) == FAUST))
        return
    out: list[str] = []
    for extra in args.extra:
        out += project["optional-dependencies"][extra]
    if args.faust_deps:
        out += [r for r in core if _name(r) != FAUST]
        for req in importlib.metadata.requires(FAUST) or []:
            if "extra ==" not in req and _name(req) != "click":
                out.append(req.split(";")[0])
    print("\n".join(f"{r}" for r in out))


if __name__ == "__main__":
    main()
