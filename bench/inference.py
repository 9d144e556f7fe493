"""Inference benchmark: eager PyTorch vs each served artifact through the local endpoint's predict path.

    python -m bench.inference [--seconds 3] [--archs resnet50,inception_v3] [--json runs/bench.json]
    python -m bench.inference --model runs/rn50/model    # a trained model's own artifacts, int8 included
    python -m bench.inference --model build/model/artifacts --checkpoint model/default/model.safetensors

One run, side by side, on this machine: ResNet-50 @224 and InceptionV3 @299, batch 1 and 8; img/s,
ms per image, ratio to eager, the fraction of this machine's fp32 matrix-multiply rate (measured at
the start of the run), the largest logit difference from eager and the share of the bundled sample
X-rays (samples/) given the same label as eager fp32. ``served`` marks the path the endpoint uses by
default. Eager runs what the served path runs: with a lung-field network in the package, that network
then one backbone pass; without, the backbone on the image and its three turned copies. Then
preprocessing ms/image for a 1024 px PNG and a 2000 px JPEG (the served decoder vs a
naive full-resolution RGB decode). Random weights (seeded): speed does not depend on them, and the
agreement measures the arithmetic of each path, not the model. The int8 row (``model.builder.quantize``,
calibrated on the sample X-rays) times the quantized graph; its agreement means little here, because
an untrained network's logits are nearly tied: the guard of ``model.builder.quantize`` on a trained model's
test images is what decides whether int8 is served.

With ``--device cuda`` the TorchScript rows run on the GPU (a CUDA graph at batch 1), with an fp16
row (``model.serving.gpu``) beside fp32; int8 stays a CPU path and is left out.

With ``--model DIR`` (a trained model's directory: ``model.safetensors`` and its exported artifacts,
after ``model.builder.quantize`` where it ran) the same rows are timed on that model instead: eager is its
checkpoint, the ONNX rows its own graphs, and ``served`` is what the runtime serves from that
directory, int8 only where the guard recorded in its ``metadata.json`` passed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from model.builder.architectures import ARCHS, ExportWrapper, build_model
from model.builder.artifacts import DEFAULT_LUNGS
from model.builder.checkpoint import load_checkpoint
from model.builder.export import export_model
from model.builder.lung_network import load_lung_checkpoint
from model.builder.quantize import quantize
from model.core.contract import INT8_ONNX_FILE, LUNGS_ONNX_FILE, ONNX_FILE, TORCHSCRIPT_FILE
from model.core.labels import labels_for
from model.core.lung_fields import LUNG_SIZE
from model.core.preprocessing import decode_gray, prepare, to_batch
from model.core.presets import get_preset
from model.serving.backends import Backend, OnnxBackend, TorchScriptBackend, load_lungs
from model.serving.metadata import ModelMetadata
from model.serving.runtime import Predictor

GFLOP_PER_IMAGE = {"resnet50": 8.17, "inception_v3": 11.46, "resnet18": 3.64}  # 2 x MACs at the preset's size
# Without a lung-field network the served graph runs the backbone on the image and on three turned
# copies (the input gate); with one, once (``ExportWrapper(turned=False)``), after the lung network.
PASSES_WITHOUT_LUNGS = 4
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def timeit(fn: Callable[[], object], seconds: float, min_runs: int = 5) -> float:
    """Median wall time of fn after two warm-up calls, running for about ``seconds``."""
    fn()
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(device: str, size: int = 2048, seconds: float = 1.0) -> float:
    """This machine's fp32 matrix-multiply rate with the current threads: the yardstick for 'of peak'."""
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)

    def product() -> object:
        out = a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return 2 * size**3 / timeit(product, seconds) / 1e9


def sample_images(preset: str) -> np.ndarray:
    """The bundled sample X-rays, through the served preprocessing (uint8)."""
    paths = sorted(p for p in SAMPLES.glob("*.png") if p.stem.split("-")[0] in labels_for("multiclass"))
    return np.stack([prepare(p.read_bytes(), get_preset(preset)) for p in paths])


def with_lungs(backend: Backend, meta: ModelMetadata, model_dir: Path) -> Predictor:
    """A predictor on ``backend`` with the package's lung-field network beside it, as the runtime loads it."""
    return Predictor(backend, meta, load_lungs(model_dir, meta, backend))


def served_paths(
    model_dir: Path, meta: ModelMetadata, images: np.ndarray, device: str, int8: bool
) -> dict[str, Predictor]:
    """Every path the runtime can serve ``model_dir`` by, each with the package's lung-field network."""
    predictors = {
        "torchscript": Predictor.load(model_dir, "torchscript"),
        "onnx": with_lungs(OnnxBackend(model_dir / ONNX_FILE), meta, model_dir),  # fp32, whatever is served
    }
    if int8 and not (model_dir / INT8_ONNX_FILE).is_file():
        # Calibrated on the sample X-rays and their mirror images: enough for speed; a real package
        # calibrates on training images and serves int8 only if model.builder.quantize's guard passes.
        quantize(model_dir, np.concatenate([images, images[:, :, ::-1]]))
    if int8:
        predictors["onnx-int8"] = with_lungs(OnnxBackend(model_dir / INT8_ONNX_FILE), meta, model_dir)
    if device == "cuda":
        fp16 = TorchScriptBackend(model_dir / TORCHSCRIPT_FILE, half=True)
        predictors["torchscript-fp16"] = with_lungs(fp16, meta, model_dir)
    return predictors


def bench_arch(
    arch: str,
    seconds: float,
    peak: float,
    device: str = "cpu",
    int8: bool = True,
    model_dir: Path | None = None,
    checkpoint: Path | None = None,
) -> list[dict[str, object]]:
    torch.manual_seed(0)
    if model_dir is not None:
        net, meta = load_checkpoint(checkpoint or model_dir / "model.safetensors")
        net = net.float().eval()
    else:
        size = get_preset(ARCHS[arch].preset).size
        net = build_model(arch, "multiclass").eval()
        meta = ModelMetadata("bench", "0", arch, "multiclass", list(labels_for("multiclass")), size, ARCHS[arch].preset)
    arch, size = meta.arch, meta.input_size
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if model_dir is not None:
            for path in model_dir.iterdir():
                if path.is_file():
                    shutil.copy(path, Path(tmp) / path.name)
        else:
            export_model(net, meta, Path(tmp))
        has_lungs = (Path(tmp) / LUNGS_ONNX_FILE).is_file()
        eager = ExportWrapper(net, turned=not has_lungs).eval().to(device)
        passes = 1 if has_lungs else PASSES_WITHOUT_LUNGS
        # Eager runs what the served path runs: the lung-field network first where the package has one.
        eager_lungs = load_lung_checkpoint(DEFAULT_LUNGS)[0].to(device) if has_lungs else None
        small = torch.rand(8, 1, LUNG_SIZE, LUNG_SIZE)
        images = sample_images(meta.preset)
        samples = to_batch(list(images))
        predictors = served_paths(Path(tmp), meta, images, device, int8)
        served = Predictor.load(Path(tmp)).backend.name
        with torch.inference_mode():
            truth = eager(torch.from_numpy(samples).to(device))[0].cpu().numpy().argmax(axis=1)
        agreement = {"eager": 1.0}
        for name, predictor in predictors.items():
            agreement[name] = float((predictor.backend.run(samples).logits.argmax(axis=1) == truth).mean())
        for batch in (1, 8):
            # Real X-rays, not noise: int8 ranges are calibrated on X-rays, and noise would overstate
            # how far its logits move.
            x = torch.from_numpy(np.resize(samples, (batch, *samples.shape[1:])))
            with torch.inference_mode():
                reference = eager(x.to(device))[0].cpu().numpy()

            lung_batch = small[:batch]

            def run_eager(x: torch.Tensor = x, lung_batch: torch.Tensor = lung_batch) -> object:
                # Host input to host logits, like the served path (which also copies back the CAMs).
                with torch.inference_mode():
                    if eager_lungs is not None:
                        tuple(output.cpu() for output in eager_lungs(lung_batch.to(device)))
                    return tuple(output.cpu() for output in eager(x.to(device)))

            def run_served(predictor: Predictor, array: np.ndarray, lung_array: np.ndarray) -> object:
                if predictor.lungs is not None:
                    predictor.lungs.graph(lung_array)
                return predictor.run_arrays(array)

            base = timeit(run_eager, seconds)
            results = {"eager": (base, 0.0)}
            for name, predictor in predictors.items():
                logits = predictor.backend.run(x.numpy()).logits
                diff = float(np.abs(logits - reference).max() / max(1.0, np.abs(reference).max()))
                run = functools.partial(run_served, predictor, x.numpy(), lung_batch.numpy())
                results[name] = (timeit(run, seconds), diff)
            for name, (t, diff) in results.items():
                rows.append(
                    {
                        "arch": arch,
                        "batch": batch,
                        "path": name,
                        "served": name != "eager" and predictors[name].backend.name == served,
                        "ms_per_img": t * 1000 / batch,
                        "img_per_s": batch / t,
                        "vs_eager": base / t,
                        "of_peak": batch / t * GFLOP_PER_IMAGE[arch] * passes / peak,
                        "max_dlogit": diff,
                        "agreement": agreement[name],
                    }
                )
    return rows


def format_row(row: dict[str, object]) -> str:
    r = row
    mark = "*" if r["served"] else " "
    return (
        f"{r['arch']:<13} {r['batch']:>5} {r['path'] + mark:<17} {r['img_per_s']:>8.1f} {r['ms_per_img']:>10.1f} "
        f"{r['vs_eager']:>7.2f}x {r['of_peak']:>8.1%} {r['max_dlogit']:>10.1e} {r['agreement']:>9.0%}"
    )


def bench_preprocessing(seconds: float) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1024, 0:1024]
    png_buffer = io.BytesIO()
    Image.fromarray(((x + y) / 8 % 256).astype(np.uint8) + rng.integers(0, 8, (1024, 1024), np.uint8), "L").save(
        png_buffer, "PNG"
    )
    y, x = np.mgrid[0:2000, 0:2000]
    jpeg_buffer = io.BytesIO()
    Image.fromarray(((x * y) / 4000 % 256).astype(np.uint8), "L").convert("RGB").save(jpeg_buffer, "JPEG", quality=90)
    png, jpeg = png_buffer.getvalue(), jpeg_buffer.getvalue()

    def naive(data: bytes) -> object:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
        return np.asarray(image)

    rows = []
    for name, data in (("1024px PNG", png), ("2000px JPEG", jpeg)):
        served = timeit(lambda d=data: decode_gray(d, 224), seconds)
        slow = timeit(lambda d=data: naive(d), seconds)
        rows.append({"image": name, "served_ms": served * 1000, "naive_rgb_ms": slow * 1000})
    return rows


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    where = torch.cuda.get_device_name() if device == "cuda" else f"{torch.get_num_threads()} CPU threads"
    peak = matmul_gflops(device)
    print(f"torch {torch.__version__} on {where}; 'of peak' is against {peak:.0f} GFLOP/s (fp32 matmul, measured)")
    print("* the path the endpoint serves by default; agreement: sample X-rays labelled as eager fp32 labels them\n")
    print(
        f"{'arch':<13} {'batch':>5} {'path':<17} {'img/s':>8} {'ms/img':>10} {'vs eager':>8} "
        f"{'of peak':>8} {'max |dlogit|':>10} {'agreement':>9}"
    )
    rows = []
    for arch in args.archs.split(",") if args.model is None else ["(model)"]:
        int8 = args.int8 and device == "cpu"
        for row in bench_arch(arch, args.seconds, peak, device, int8, args.model, args.checkpoint):
            rows.append(row)
            print(format_row(row), flush=True)
    print("\npreprocessing to the 224 px network input (ms per image):")
    decoding = bench_preprocessing(args.seconds)
    for d in decoding:
        served, naive = d["served_ms"], d["naive_rgb_ms"]
        print(f"{d['image']:<12} served {served:>6.1f} ms   naive RGB {naive:>6.1f} ms   ({naive / served:.1f}x)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {"device": where, "torch": torch.__version__, "matmul_gflops": peak}
        run = {
            "command": " ".join(["python -m bench.inference", *sys.argv[1:]]),
            "date": dt.date.today().isoformat(),
            "machine": machine,
            "rows": rows,
            "preprocessing": decoding,
        }
        args.json.write_text(json.dumps(run, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="resnet50,inception_v3", help="(default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="(default: %(default)s)")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="timing budget per measurement (default: %(default)s)"
    )
    parser.add_argument(
        "--int8",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the int8 graph of model.builder.quantize, on the CPU (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every row as JSON (default: none)")
    parser.add_argument(
        "--model", type=Path, default=None, help="a trained model directory to time instead of --archs (default: none)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="with --model: eager's weights (default: DIR/model.safetensors)"
    )
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: %(default)s)"
    )
    main(parser.parse_args())
