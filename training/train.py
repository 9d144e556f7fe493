"""Train an X-ray classifier: a SageMaker training entry point that runs the same way locally.

    python -m training.train --data ../shared/data/ozturk-3class --arch resnet18 --task multiclass \\
        --output-dir runs/r18 --epochs 30

Fine-tuning an existing model on new images (a site's own): ``--init-checkpoint model/default/
model.safetensors`` starts from its weights (its architecture, task and preset), ``--freeze-epochs N``
trains the classifier alone for the first N epochs, and ``--backbone-lr-scale`` gives the backbone a
fraction of the head's learning rate.

On SageMaker the data comes from SM_CHANNEL_TRAINING, the model goes to SM_MODEL_DIR (which SageMaker
packs as model.tar.gz in the serving layout), and checkpoints to /opt/ml/checkpoints (spot training).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.builder.architectures import ARCHS, XrayNet, build_model, get_arch
from model.builder.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from model.builder.export import export_model
from model.builder.half import guard as guard_fp16
from model.builder.half import record as record_fp16
from model.builder.lung_network import load_finder, load_lung_checkpoint, read_lung_info
from model.builder.package import build_tarball, code_files
from model.core.labels import TASKS, labels_for
from model.core.presets import Preset, get_preset
from model.serving.metadata import ModelMetadata
from training.adversary import SourceAdversary
from training.augment import LEVELS
from training.calibration import fit_temperature
from training.data import Record, ingest, read_manifest, split_of, write_manifest
from training.dataset import (
    BALANCES,
    XrayImages,
    batches,
    epoch_order,
    source_balanced_weights,
    steps_per_epoch,
)
from training.gate import MAX_REFUSAL, fit_gate, refused_count, served_scores
from training.metrics import compute_metrics
from training.operating_point import TARGET_SENSITIVITY, choose_policy
from training.presets import EvalPreset, TrainPreset

logger = logging.getLogger(__name__)
DEFAULT_ARCH: Final = "resnet50"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_records(args: argparse.Namespace) -> list[Record]:
    if args.manifest is not None:
        records = read_manifest(args.manifest)
    else:
        records, report = ingest(args.data, folds=args.folds, seed=args.split_seed)
        write_manifest(records, args.output_data_dir / "manifest.csv")
        logger.info("ingested %s: %s", args.data, report.counts)
    for record in records:
        record.split = split_of(record.fold, args.test_fold, args.val_fold)
    labels = labels_for(args.task)
    kept = [r for r in records if r.label in labels]
    if len(kept) < len(records):
        logger.info("task %s: left out %d images of other labels", args.task, len(records) - len(kept))
    if args.limit:
        kept = kept[: args.limit]
    return kept


def resolve_init(args: argparse.Namespace) -> None:
    """With ``--init-checkpoint``, the run takes the checkpoint's architecture and preset; a checkpoint of
    another task, or an ``--arch``/``--preset`` other than its own, is refused before any image is read."""
    if args.init_checkpoint is None:
        args.arch = args.arch or DEFAULT_ARCH
        return
    try:
        meta = read_checkpoint_metadata(args.init_checkpoint)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--init-checkpoint {args.init_checkpoint}: {exc}") from exc
    if not set(labels_for(args.task)) <= set(meta.labels):
        raise SystemExit(
            f"--init-checkpoint {args.init_checkpoint} is a {meta.task} model ({', '.join(meta.labels)}); "
            f"--task {args.task} needs a checkpoint of that task, or of a task with more labels"
        )
    for flag, asked, own in (("--arch", args.arch, meta.arch), ("--preset", args.preset, meta.preset)):
        if asked and asked != own:
            raise SystemExit(f"--init-checkpoint {args.init_checkpoint} is {own}; leave out {flag} {asked}")
    args.arch, args.preset = meta.arch, meta.preset


def initial_network(path: Path, task: str) -> XrayNet:
    """The checkpoint's network for ``task``: as it is, or with the rows of its classifier (and of its
    gate's class statistics, refitted anyway) for the task's labels alone, as a 3-class model becomes a
    covid vs no_findings one."""
    net, meta = load_checkpoint(path)
    if meta.task == task:
        return net
    rows = [meta.labels.index(label) for label in labels_for(task)]
    target = build_model(meta.arch, task, "none", meta.preset)
    source = net.state_dict()
    state = {}
    for key, value in target.state_dict().items():
        old = source[key]
        state[key] = old if old.shape == value.shape else old[rows] if old.shape[0] == len(meta.labels) else value
    target.load_state_dict(state)
    return target


def parameter_groups(net: XrayNet, lr: float, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """The backbone at ``lr * backbone_lr_scale``, everything else (classifier, auxiliary head) at ``lr``."""
    backbone = [p for p in net.backbone.parameters()]
    ids = {id(p) for p in backbone}
    head = [p for p in net.parameters() if id(p) not in ids]
    return [{"params": backbone, "lr": lr * backbone_lr_scale}, {"params": head, "lr": lr}]


def set_backbone_trainable(net: XrayNet, trainable: bool) -> None:
    for parameter in net.backbone.parameters():
        parameter.requires_grad_(trainable)


def make_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    total = max(1, args.epochs * steps_per_epoch)
    if args.schedule == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total)
    warmup = min(total // 10, 3 * steps_per_epoch)

    def cosine(step: int) -> float:
        if step < warmup:
            return float((step + 1) / (warmup + 1))
        return float(0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


def train_one_epoch(
    net: XrayNet,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    data: XrayImages,
    order: torch.Tensor,
    args: argparse.Namespace,
    generator: torch.Generator,
    epoch: int,
    adversary: SourceAdversary | None = None,
) -> float:
    """One pass over ``order`` (indices into ``data``, which lives on the training device). While the
    backbone is frozen (``--freeze-epochs``), its batch-norm statistics stay those it was trained with."""
    preset = TrainPreset(args.augment, args.hflip)
    net.train()
    if epoch < args.freeze_epochs:
        net.backbone.eval()
    device = data.images.device
    amp = args.amp and device.type == "cuda"
    total, seen = 0.0, 0
    steps = list(batches(order.to(device), args.batch_size))
    bar = tqdm(steps, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True, disable=None)
    for index in bar:
        images = preset(data.images[index], generator)
        targets = data.targets[index]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, aux, pooled = net.forward_train(images)
            loss = criterion(logits, targets)
            if aux is not None:
                loss = loss + 0.4 * criterion(aux, targets)
            if adversary is not None:
                source_logits = adversary(pooled.float(), args.source_adversary)
                loss = loss + nn.functional.cross_entropy(source_logits, data.source_ids[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(targets)
        seen += len(targets)
        bar.set_postfix(loss=f"{total / seen:.4f}")
    return total / max(1, seen)


@torch.no_grad()
def evaluate(
    net: XrayNet, data: XrayImages, device: torch.device, amp: bool, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets for every image of ``data`` (eval mode, no augmentation)."""
    net.eval()
    if not len(data):
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    all_logits = []
    for start in range(0, len(data), batch_size):
        images = EvalPreset()(data.images[start : start + batch_size].to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(images)
        all_logits.append(logits.float().cpu())
    return torch.cat(all_logits), data.targets.cpu()


def _metrics(
    logits: torch.Tensor, targets: torch.Tensor, labels: list[str], temperature: float = 1.0
) -> dict[str, Any]:
    probs = torch.softmax(logits / temperature, dim=1).numpy()
    return compute_metrics(targets.numpy(), probs, labels)


def fit_model_gate(
    net: XrayNet, train_set: XrayImages, val_set: XrayImages, test_set: XrayImages, max_refusal: float
) -> dict[str, Any]:
    """Fit the out-of-distribution gate on the training images; its threshold on the validation ones."""
    if not len(val_set):
        logger.warning("no validation images: the model's gate stays unfitted and refuses nothing")
        return {}
    targets = train_set.targets.numpy()
    policy = fit_gate(net, train_set.images.numpy(), targets, val_set.images.numpy(), max_refusal)
    if len(test_set):
        scores, turned = served_scores(net, test_set.images.numpy())
        policy["test"] = {"images": len(test_set), "refused": refused_count(scores, turned, policy["threshold"])}
    logger.info("gate: threshold %.3f, %s", policy["threshold"], policy.get("test", policy["threshold_from"]))
    return policy


def fit_operating_point(
    val_logits: torch.Tensor, val_targets: torch.Tensor, labels: list[str], temperature: float, target: float
) -> dict[str, Any]:
    """The COVID threshold that keeps ``target`` sensitivity on the validation images (none without
    validation COVID images, or for a task without covid)."""
    if target <= 0 or "covid" not in labels or not len(val_targets):
        return {}
    covid = labels.index("covid")
    is_covid = val_targets.numpy() == covid
    if not is_covid.any():
        logger.warning("no validation COVID images: no operating point; the most probable label wins")
        return {}
    p_covid = torch.softmax(val_logits / temperature, dim=1)[:, covid].double().numpy()
    return choose_policy(is_covid, p_covid, target)


def run_identity(args: argparse.Namespace, preset: str) -> dict[str, Any]:
    """What a resume state was made for: resuming it under any other model would load wrong weights."""
    return {"arch": args.arch, "task": args.task, "preset": preset, "source_adversary": args.source_adversary > 0}


def check_resumable(state: dict[str, Any], args: argparse.Namespace, preset: str) -> None:
    recorded = state.get("run")
    if recorded is not None and recorded != run_identity(args, preset):
        raise SystemExit(
            f"{args.checkpoint_dir / 'last.pt'} is the resume state of {recorded}, not of "
            f"{run_identity(args, preset)}: use another --checkpoint-dir, or --no-resume to start over"
        )


def save_state(path: Path, **state: Any) -> None:
    """Atomic resume checkpoint: a spot interruption mid-write leaves the previous one intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@dataclass
class Data:
    """The run's images, decoded once: the records of each split and their tensors."""

    splits: dict[str, list[Record]]
    train: XrayImages
    val: XrayImages
    test: XrayImages


def load_data(args: argparse.Namespace, labels: list[str], preset: Preset) -> Data:
    records = load_records(args)
    splits = {s: [r for r in records if r.split == s] for s in ("train", "val", "test")}
    logger.info("split sizes: %s", {s: len(v) for s, v in splits.items()})
    if not splits["train"]:
        raise SystemExit("no training images: check --test-fold/--val-fold against --folds and the data")
    t0 = time.time()
    lungs = load_finder(args.lungs) if preset.lungs else None
    train_set, val_set, test_set = (
        XrayImages(args.data, splits[s], labels, preset, lungs) for s in ("train", "val", "test")
    )
    logger.info("decoded %d images (%s) in %.1fs", len(records), preset.id, time.time() - t0)
    for name, images in zip(("train", "val", "test"), (train_set, val_set, test_set), strict=True):
        if images.refused:
            logger.warning("%s: %d images left out, refused by the lung-field gate", name, len(images.refused))
        splits[name] = images.records
    return Data(splits, train_set, val_set, test_set)


def class_weights(train_set: XrayImages, labels: list[str], balance: str) -> torch.Tensor:
    """Inverse-frequency loss weights (covid is the rare class), unless the sampler already balances."""
    counts = Counter(int(t) for t in train_set.targets)
    return torch.tensor(
        [len(train_set) / (len(labels) * max(1, counts[i])) if balance == "class" else 1.0 for i in range(len(labels))]
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.time()  # --time-limit counts from here: decoding is part of a run's time
    seed_everything(args.seed)
    resolve_init(args)
    for directory in (args.output_dir, args.output_data_dir, args.checkpoint_dir):
        directory.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    amp = args.amp and device.type == "cuda"
    torch.backends.cudnn.benchmark = device.type == "cuda"
    labels = list(labels_for(args.task))
    spec = get_arch(args.arch)
    preset = get_preset(args.preset or spec.preset)
    data = load_data(args, labels, preset)
    train_set, val_set = data.train, data.val
    # The whole training split lives on the device: batches are gathered and augmented there.
    train_data = train_set.on(device)
    generator = torch.Generator().manual_seed(args.seed)
    augment_generator = torch.Generator(device=device).manual_seed(args.seed)
    sample_weights = source_balanced_weights(train_set.records) if args.balance == "source" else None

    if args.init_checkpoint is not None:
        net = initial_network(args.init_checkpoint, args.task).to(device)
        logger.info("starting from %s", args.init_checkpoint)
    else:
        net = build_model(args.arch, args.task, args.pretrained, preset.id).to(device)
    weights = class_weights(train_set, labels, args.balance)
    criterion = nn.CrossEntropyLoss(weight=weights.to(device), label_smoothing=args.label_smoothing)
    adversary = (
        SourceAdversary(spec.num_features, len(train_set.sources)).to(device)
        if args.source_adversary > 0 and len(train_set.sources) > 1
        else None
    )
    groups = parameter_groups(net, args.lr, args.backbone_lr_scale)
    if adversary is not None:
        groups.append({"params": list(adversary.parameters()), "lr": args.lr})
    optimizer = torch.optim.AdamW(groups, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = make_scheduler(args, optimizer, steps_per_epoch(len(train_set), args.batch_size))

    state_path = args.checkpoint_dir / "last.pt"
    start_epoch, best_f1, best_epoch, best_state, history = 0, -1.0, -1, None, []
    if args.resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        check_resumable(state, args, preset.id)
        net.load_state_dict(state["model"])
        if adversary is not None:
            adversary.load_state_dict(state["adversary"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        generator.set_state(state["loader_rng"])
        augment_generator.set_state(state["augment_rng"])
        start_epoch, best_f1, best_epoch = state["epoch"] + 1, state["best_f1"], state["best_epoch"]
        best_state, history = state["best_state"], state["history"]
        logger.info("resumed from %s at epoch %d", state_path, start_epoch)

    for epoch in range(start_epoch, args.epochs):
        t_epoch = time.time()
        set_backbone_trainable(net, epoch >= args.freeze_epochs)
        order = epoch_order(train_set.records, args.balance, generator, sample_weights)
        loss = train_one_epoch(
            net, criterion, optimizer, scheduler, train_data, order, args, augment_generator, epoch, adversary
        )
        val_logits, val_targets = evaluate(net, val_set, device, amp)
        val = _metrics(val_logits, val_targets, labels) if len(val_targets) else {"macro_f1": 0.0, "accuracy": 0.0}
        seconds = time.time() - t_epoch
        history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_macro_f1": val["macro_f1"],
                "val_accuracy": val["accuracy"],
                "seconds": seconds,
            }
        )
        logger.info(
            "epoch %d loss %.4f val macro-F1 %.4f acc %.4f (%.1fs)",
            epoch,
            loss,
            val["macro_f1"],
            val["accuracy"],
            seconds,
        )
        if val["macro_f1"] > best_f1:
            best_f1, best_epoch = val["macro_f1"], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        save_state(
            state_path,
            run=run_identity(args, preset.id),
            model=net.state_dict(),
            adversary=adversary.state_dict() if adversary is not None else None,
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            rng=torch.get_rng_state(),
            loader_rng=generator.get_state(),
            augment_rng=augment_generator.get_state(),
            epoch=epoch,
            best_f1=best_f1,
            best_epoch=best_epoch,
            best_state=best_state,
            history=history,
        )
        if args.stop_after and epoch + 1 - start_epoch >= args.stop_after and epoch + 1 < args.epochs:
            logger.info("stopping after %d epochs this run; rerun the same command to resume", args.stop_after)
            return {"stopped_at_epoch": epoch, "history": history}
        if args.time_limit and time.time() - t_start >= args.time_limit:
            logger.info(
                "time limit of %ds reached after epoch %d: finishing with the best epoch", args.time_limit, epoch
            )
            break
        if epoch - best_epoch >= args.patience:
            logger.info("early stop: no val macro-F1 gain for %d epochs", args.patience)
            break

    if best_state is not None:
        net.load_state_dict(best_state)
    return finalize_model(args, net, data, labels, preset, device, amp, best_epoch, history)


def finalize_model(
    args: argparse.Namespace,
    net: XrayNet,
    data: Data,
    labels: list[str],
    preset: Preset,
    device: torch.device,
    amp: bool,
    best_epoch: int,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """The trained network made servable: temperature, gate and operating point fitted on the held-out
    splits, test metrics, metadata, the checkpoint and (``--export``) the served artifacts."""
    val_logits, val_targets = evaluate(net, data.val, device, amp)
    temperature = fit_temperature(val_logits, val_targets) if len(val_targets) else 1.0
    test_logits, test_targets = evaluate(net, data.test, device, amp)
    gate = fit_model_gate(net, data.train, data.val, data.test, args.gate_max_refusal)
    operating_point = fit_operating_point(val_logits, val_targets, labels, temperature, args.covid_sensitivity)
    metrics: dict[str, Any] = {
        "best_epoch": best_epoch,
        "val": _metrics(val_logits, val_targets, labels, temperature) if len(val_targets) else {},
        "test": _metrics(test_logits, test_targets, labels, temperature) if len(test_targets) else {},
        "test_uncalibrated_ece": _metrics(test_logits, test_targets, labels)["ece"] if len(test_targets) else None,
    }
    splits = data.splits
    meta = ModelMetadata(
        name=args.model_name,
        version=args.model_version or f"{args.arch}-{args.task}-{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}",
        arch=args.arch,
        task=args.task,
        labels=labels,
        input_size=preset.size,
        preset=preset.id,
        temperature=temperature,
        gate=gate,
        operating_point=operating_point,
        training_data={
            "data": str(args.data.name),
            "counts": {s: dict(Counter(r.label for r in v)) for s, v in splits.items()},
            "test_fold": args.test_fold,
            "val_fold": args.val_fold,
            "grouped": True,
            "sources": {s: dict(Counter(r.source for r in v)) for s, v in splits.items()},
            "recipe": {
                "preset": preset.id,
                "augment": args.augment,
                "balance": args.balance,
                "source_adversary": args.source_adversary,
            },
            "epochs_run": len(history),
        },
        lung_fields=read_lung_info(args.lungs) if preset.lungs else {},
        metrics={"test": {k: v for k, v in metrics["test"].items() if k != "per_class"}} if metrics["test"] else {},
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    net = net.cpu().eval()
    save_checkpoint(net, meta, args.output_dir / "model.safetensors", half=args.half)
    if args.export:
        export_model(net, meta, args.output_dir, lungs=load_lung_checkpoint(args.lungs) if preset.lungs else None)
        if device.type == "cuda" and len(data.test):
            # Trained on a GPU, so a GPU can tell whether fp16 answers as fp32 does (model.builder.half); a CPU
            # run leaves the verdict out (fp32 served), and `python -m model.builder.half` can add it later.
            truth = [r.label for r in data.test.records]
            record_fp16(args.output_dir, guard_fp16(args.output_dir, data.test.images.numpy(), truth, "cuda"))
        for name, data_bytes in code_files().items():
            (args.output_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (args.output_dir / name).write_bytes(data_bytes)
        build_tarball(args.output_dir, args.output_data_dir / "model.tar.gz")
    if len(test_targets):
        write_predictions(
            args.output_data_dir / "test_predictions.csv",
            splits["test"],
            labels,
            torch.softmax(test_logits / temperature, dim=1).numpy(),
        )
    summary = {"metrics": metrics, "history": history, "temperature": temperature, "metadata": meta.to_dict()}
    (args.output_data_dir / "training.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


PREDICTION_COLUMNS: Final = ("path", "label", "source", "group")  # then one probability per label


def write_predictions(path: Path, records: list[Record], labels: list[str], probs: np.ndarray) -> None:
    """One row per held-out image: pooled across folds, every image is scored exactly once."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*PREDICTION_COLUMNS, *labels])
        for record, row in zip(records, probs, strict=True):
            writer.writerow([record.path, record.label, record.source, record.group, *(f"{p:.6f}" for p in row)])


def _env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name, default))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add(
        "--data",
        type=Path,
        default=_env_path("SM_CHANNEL_TRAINING", os.environ.get("SM_CHANNEL_TRAIN", "data")),
        help="dataset root, any layout training.data reads (default: $SM_CHANNEL_TRAINING or %(default)s)",
    )
    add(
        "--manifest",
        type=Path,
        default=None,
        help="manifest from training.data; ingested on the fly if omitted",
    )
    add(
        "--output-dir",
        type=Path,
        default=_env_path("SM_MODEL_DIR", "runs/model"),
        help="model directory (default: $SM_MODEL_DIR or %(default)s)",
    )
    add(
        "--output-data-dir",
        type=Path,
        default=_env_path("SM_OUTPUT_DATA_DIR", "runs/output"),
        help="metrics, manifest, model.tar.gz (default: %(default)s)",
    )
    add(
        "--checkpoint-dir",
        type=Path,
        default=Path(
            os.environ.get("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints")
            if os.environ.get("SM_MODEL_DIR")
            else "runs/checkpoints"
        ),
        help="resume state, synced to S3 on spot training (default: %(default)s)",
    )
    add(
        "--arch",
        default=None,
        choices=list(ARCHS),
        help=f"(default: {DEFAULT_ARCH}, or the --init-checkpoint's own)",
    )
    add("--task", default="multiclass", choices=TASKS, help="(default: %(default)s)")
    add(
        "--pretrained",
        default="none",
        help="imagenet | none | PATH to a torchvision .pth (default: %(default)s)",
    )
    add(
        "--init-checkpoint",
        type=Path,
        default=None,
        help="start from this project checkpoint (.safetensors): its weights, architecture, task and preset "
        "(default: none, --pretrained weights)",
    )
    add(
        "--freeze-epochs",
        type=int,
        default=0,
        help="train the classifier alone for the first N epochs, the backbone frozen (default: %(default)s)",
    )
    add(
        "--backbone-lr-scale",
        type=float,
        default=1.0,
        help="the backbone's learning rate as a fraction of --lr (default: %(default)s)",
    )
    add("--epochs", type=int, default=30, help="(default: %(default)s)")
    add("--batch-size", type=int, default=32, help="(default: %(default)s)")
    add("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    add("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default: %(default)s)")
    add("--label-smoothing", type=float, default=0.05, help="(default: %(default)s)")
    add("--schedule", default="cosine", choices=["cosine", "onecycle"], help="(default: %(default)s)")
    add(
        "--covid-sensitivity",
        type=float,
        default=TARGET_SENSITIVITY,
        help="COVID sensitivity the operating point keeps on validation; 0: no operating point (default: %(default)s)",
    )
    add(
        "--gate-max-refusal",
        type=float,
        default=MAX_REFUSAL,
        help="largest share of validation X-rays the out-of-distribution gate may refuse (default: %(default)s)",
    )
    add(
        "--patience",
        type=int,
        default=8,
        help="early stopping epochs without val macro-F1 gain (default: %(default)s)",
    )
    add(
        "--preset",
        default="",
        help="preprocessing preset id, e.g. xray-gray-224-v2 (default: the arch's own, xray-gray-224-v1 or -299-v1)",
    )
    add(
        "--lungs",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "model" / "default" / "lungs.safetensors",
        help="the lung-field network a lung-centred preset (v3) crops with (default: the bundled one)",
    )
    add("--augment", default="basic", choices=LEVELS, help="training augmentation (default: %(default)s)")
    add(
        "--balance",
        default="class",
        choices=BALANCES,
        help="class: inverse-frequency loss weights; source: sample every label, and every source within "
        "a label, equally (default: %(default)s)",
    )
    add(
        "--source-adversary",
        type=float,
        default=0.0,
        help="weight of the reversed gradient of a source classifier on the pooled features; 0: off "
        "(default: %(default)s)",
    )
    add("--hflip", action="store_true", help="also flip horizontally (off: anatomy is not symmetric)")
    add("--folds", type=int, default=5, help="grouped folds when ingesting (default: %(default)s)")
    add("--split-seed", type=int, default=0, help="fold assignment seed (default: %(default)s)")
    add("--test-fold", type=int, default=0, help="fold held out for test; -1 for none (default: %(default)s)")
    add(
        "--val-fold",
        type=int,
        default=1,
        help="fold used for early stopping and calibration (default: %(default)s)",
    )
    add("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    add("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    add(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 mixed precision on GPU (default: %(default)s)",
    )
    add(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="resume from checkpoint-dir/last.pt (default: %(default)s)",
    )
    add(
        "--export",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="export TorchScript/ONNX + model.tar.gz (default: %(default)s)",
    )
    add(
        "--stop-after",
        type=int,
        default=0,
        help="end this run after N epochs, resumable (default: run to the end)",
    )
    add(
        "--half",
        action="store_true",
        help="store the weights checkpoint in fp16 (half the size; exports stay fp32)",
    )
    add(
        "--time-limit",
        type=float,
        default=0,
        help="stop training after the first epoch that ends this many seconds after the start (decoding "
        "included) and finish with the best epoch so far (default: no limit)",
    )
    add("--limit", type=int, default=0, help="use only the first N images (smoke tests; default: all)")
    add("--model-name", default="xray-covid", help="(default: %(default)s)")
    add("--model-version", default="", help="(default: arch-task-timestamp)")
    return p


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    main(get_args_parser().parse_args())
