"""Copy the browser tests' screenshots (build/e2e/, written by ``make e2e``) into docs/screenshots/,
reduced to 128-colour PNGs so that the repository keeps them small.

    python -m tools.screenshots [--source build/e2e] [--target docs/screenshots]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

SHOTS = ("result-320", "result-768", "result-1280", "sign-in-320")


def main(args: argparse.Namespace) -> None:
    args.target.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        shot = Image.open(args.source / f"{name}.png").convert("RGB")
        shot.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT).save(
            args.target / f"{name}.png", optimize=True
        )
        print(f"{args.target / name}.png")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("build/e2e"), help="default: build/e2e")
    parser.add_argument("--target", type=Path, default=Path("docs/screenshots"), help="default: docs/screenshots")
    parser.add_argument("--colors", type=int, default=128, help="palette size (default: 128)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
