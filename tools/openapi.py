"""Write the API's OpenAPI document, ``docs/openapi.json``, from the routes and their shapes
(``functions.api.schema``, through Powertools' OpenAPI support). The web client's types are generated
from it (``cd client && npm run generate:api`` writes ``client/src/generated/api.ts``).
``tests/unit/functions/test_openapi.py`` fails while the document is stale, the client's tests while the types are.

    python -m tools.openapi [--out docs/openapi.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from unittest import mock

from local_stack.template import Template
from model import __version__

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "openapi.json"
TITLE = "Chest X-ray classifier API"
DESCRIPTION = (
    "Classify one chest X-ray, read stored results, get upload forms. Every route needs the caller's "
    "Cognito ID token in the Authorization header and acts for that caller (docs/api.md)."
)


def _placeholder_environment() -> AbstractContextManager[Any]:
    """The API function's environment with a placeholder for every value the template resolves at
    deploy time, for the ``with`` block only: importing the API module then makes no AWS call (its
    clients are only created)."""
    values = {
        name: value if isinstance(value, str) else "1"
        for name, value in Template().function_variables("ApiFunction").items()
    }
    values |= {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"}
    return mock.patch.dict(os.environ, values)


def document() -> dict[str, Any]:
    """The OpenAPI document of ``functions.api.app``'s routes."""
    with _placeholder_environment():
        api = importlib.import_module("functions.api.app")
    schema: dict[str, Any] = json.loads(
        api.app.get_openapi_json_schema(title=TITLE, version=__version__, description=DESCRIPTION)
    )
    return schema


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(args: argparse.Namespace) -> None:
    args.out.write_text(render())
    print(args.out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help=f"default: {OUT.relative_to(ROOT)}")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
