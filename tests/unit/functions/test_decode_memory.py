"""Peak memory of decoding the worst inputs stays within budget, alone and ten at once.

Each measurement runs in a fresh process (tests/unit/functions/decode_memory_probe.py) and reads the kernel's
resident high-water mark. The inputs are a few hundred KB to 20 MB on disk and decode to 64-256 MB:
an 8000 x 8000 16-bit PNG, RGBA PNG and palette PNG, and an 8000 x 8000 colour JPEG.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.template import Template
from tests import images
from tests.unit.conftest import run_probe

ONE_DECODE_BUDGET_MB = 400


@pytest.fixture(scope="module")
def worst(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("worst")
    files = {
        "gray16": images.large_png(8000, 8000, "gray16"),
        "rgba": images.large_png(8000, 8000, "rgba"),
        "palette": images.large_png(8000, 8000, "palette"),
        "jpeg": images.large_jpeg(8000),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def _probe(*args: str) -> float:
    return float(run_probe(*args).strip())


@pytest.mark.parametrize("kind", ["gray16", "rgba", "palette", "jpeg"])
def test_one_worst_decode_stays_within_budget(worst: dict[str, Path], kind: str) -> None:
    assert _probe("one", str(worst[kind])) <= ONE_DECODE_BUDGET_MB


def test_a_batch_of_ten_worst_images_fits_the_batch_functions_memory(worst: dict[str, Path]) -> None:
    memory_mb = int(Template().function_setting("ClassifyBatchFunction", "MemorySize"))
    batch = [
        str(worst[kind])
        for kind in ("gray16", "rgba", "palette", "jpeg", "rgba", "gray16", "rgba", "palette", "rgba", "jpeg")
    ]
    assert _probe("batch", *batch) <= memory_mb
