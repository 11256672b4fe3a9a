"""Training loop for any registered architecture: CPU or CUDA (AMP), checkpoints, resume, seeds."""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from tqdm import tqdm

from maskrcnn import build_model, get_architecture, load_state_dict, read_metadata, save_weights
from pipeline.errors import DatasetError
from training.augment import augment, random_crop
from training.dataset import InstanceDataset

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    data: list[Path]  # one or more COCO datasets (dataset dirs or synth clip dirs), concatenated
    arch: str
    out: Path
    steps: int = 2000
    epochs: float | None = None  # when set, overrides `steps`: passes over the dataset, rounded up to whole steps
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    seed: int = 0
    device: str = "auto"
    workers: int = 1
    checkpoint_every_s: float = 300.0
    # a wall-clock budget (seconds of training, summed over resumes): the LR schedule follows whichever of steps
    # and time runs out first, and training stops at the budget with finished (annealed) weights
    time_limit_s: float | None = None
    resume: bool = True  # continue from OUT's checkpoint when one exists
    init: Path | None = None  # start from these weights (fine-tuning)
    crop: int | None = 320  # train on crops of this size at native scale (None: whole frames)
    train_sizes: tuple[int, ...] = (288, 320, 352)  # multi-scale: the crop's side is resized to one of these
    val_data: Path | None = None
    extra_metadata: dict[str, Any] = field(default_factory=dict)


def checkpoint_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.name + ".ckpt.safetensors"), out.with_name(out.name + ".ckpt.pt")


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DatasetError("device cuda requested but CUDA is not available")
    return torch.device(device)


class _Augmented(torch.utils.data.Dataset):
    def __init__(self, base: torch.utils.data.Dataset, seed: int, crop: int | None) -> None:
        self.base, self.seed, self.crop = base, seed, crop

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, target = self.base[index]
        rng = np.random.default_rng([self.seed, index, torch.initial_seed() % 2**31])
        if self.crop is not None:
            image, target = random_crop(image, target, self.crop, rng)
        return augment(image, target, rng)


def _batches(dataset: torch.utils.data.Dataset, cfg: TrainConfig, epoch: int):
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=cfg.workers,
        collate_fn=lambda batch: tuple(zip(*batch, strict=True)),
        drop_last=True,
        persistent_workers=False,
    )


def lr_at(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5% over the steps (or the time budget, if that ends sooner)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (0.05 + 0.95 * step / cfg.warmup_steps)
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.time_limit_s:
        progress = max(progress, elapsed_s / cfg.time_limit_s)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(cfg: TrainConfig) -> Path:
    """Train, checkpointing every `checkpoint_every_s`; returns the path of the final weights."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    spec = get_architecture(cfg.arch)
    class_names = spec.default_classes
    if cfg.init is not None:
        init_meta = read_metadata(cfg.init) if cfg.init.suffix == ".safetensors" else {}
        class_names = tuple(init_meta.get("class_names") or class_names)
    parts = [InstanceDataset(path, class_names) for path in cfg.data]
    dataset = torch.utils.data.ConcatDataset(parts)
    if len(dataset) < cfg.batch_size:
        raise DatasetError(f"{cfg.data}: {len(dataset)} images, fewer than one batch of {cfg.batch_size}")
    if cfg.epochs is not None:
        cfg = replace(cfg, steps=max(1, math.ceil(cfg.epochs * len(dataset) / cfg.batch_size)))
        log.info("%g epochs of %d images = %d steps", cfg.epochs, len(dataset), cfg.steps)

    model = build_model(cfg.arch, len(class_names))
    model.transform.min_size = cfg.train_sizes
    model.transform.max_size = int(max(cfg.train_sizes) * 16 / 9) + 1
    if cfg.init is not None:
        model.load_state_dict(load_state_dict(cfg.init))
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    step = 0
    elapsed_before = 0.0  # training seconds of earlier runs this one resumes
    weights_ckpt, state_ckpt = checkpoint_paths(cfg.out)
    if cfg.resume and weights_ckpt.is_file() and state_ckpt.is_file():
        model.load_state_dict(load_state_dict(weights_ckpt))
        state = torch.load(state_ckpt, map_location="cpu", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        elapsed_before = float(state.get("elapsed_s", 0.0))
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", weights_ckpt, step)
        if step >= cfg.steps:
            log.info("checkpoint already at %d/%d steps", step, cfg.steps)

    metadata = {
        "arch": cfg.arch,
        "class_names": list(class_names),
        "input_size": list(spec.input_size),
        "recipe": _jsonable({k: v for k, v in asdict(cfg).items() if k != "extra_metadata"}),
        "datasets": [_dataset_info(part) for part in parts],
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        **cfg.extra_metadata,
    }

    started = time.monotonic()

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - started

    def out_of_time() -> bool:
        return cfg.time_limit_s is not None and elapsed() >= cfg.time_limit_s

    def save_checkpoint() -> None:
        save_weights(weights_ckpt, model.state_dict(), {**metadata, "step": step})
        state = {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed_s": elapsed(),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = state_ckpt.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(state_ckpt)

    augmented = _Augmented(dataset, cfg.seed, cfg.crop)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.arch}", unit="step", dynamic_ncols=True)
    last_save = time.monotonic()
    epoch = step * cfg.batch_size // len(dataset)
    smoothed: float | None = None
    try:
        while step < cfg.steps and not out_of_time():
            for images, targets in _batches(augmented, cfg, epoch):
                if step >= cfg.steps or out_of_time():
                    break
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, cfg, elapsed())
                images = [image.to(device, non_blocking=True) for image in images]
                targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
                with torch.autocast(device.type, enabled=device.type == "cuda"):
                    losses = model(images, targets)
                    loss = sum(losses.values())
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                value = loss.item()
                smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
                parts = " ".join(f"{k.removeprefix('loss_')[:6]}={v.item():.3f}" for k, v in losses.items())
                bar.set_postfix_str(f"loss={smoothed:.3f} {parts} lr={lr_at(step, cfg, elapsed()):.2e}")
                bar.update(1)
                if time.monotonic() - last_save >= cfg.checkpoint_every_s:
                    save_checkpoint()
                    last_save = time.monotonic()
            epoch += 1
    finally:
        bar.close()
        save_checkpoint()  # an interrupted run resumes from here

    model.eval()
    final = save_weights(cfg.out, model.state_dict(), {**metadata, "step": step})
    log.info("wrote %s (%d steps)", final, step)
    return final


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _dataset_info(dataset: InstanceDataset) -> dict[str, Any]:
    info = dataset.coco.data.get("info", {})
    keep = ("description", "mode", "seed", "size", "images", "scene_seed_rule", "generator_version")
    return {"path": str(dataset.coco.root), "images": len(dataset), **{k: info[k] for k in keep if k in info}}


__all__ = ["TrainConfig", "checkpoint_paths", "train"]
