"""`maskstream train` and `maskstream eval`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from maskrcnn import list_architectures
from pipeline.config import ModelConfig, load_model_config
from stages.inference import load_detector
from training.evaluate import evaluate, format_table, load_results, predict
from training.train import TrainConfig, train


def register(subparsers: argparse._SubParsersAction) -> None:
    train_parser = subparsers.add_parser("train", help="train or fine-tune a Mask R-CNN on COCO-format data")
    train_parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="COCO dataset dir(s) or synth clip dir(s)"
    )
    train_parser.add_argument("--arch", required=True, help=f"one of: {', '.join(list_architectures())}")
    train_parser.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    train_parser.add_argument("--steps", type=int, default=2000, help="optimizer steps (default 2000)")
    train_parser.add_argument("--epochs", type=float, help="passes over the data; overrides --steps")
    train_parser.add_argument(
        "--size",
        type=_sizes,
        default=(288, 320, 352),
        help="training input sides, comma-separated; each image is resized to one at random (default 288,320,352)",
    )
    train_parser.add_argument("--batch-size", type=int, default=4)
    train_parser.add_argument("--lr", type=float, default=1e-3)
    train_parser.add_argument("--warmup-steps", type=int, default=200)
    train_parser.add_argument("--crop", type=int, default=320, help="train on crops of this size (0: whole frames)")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train_parser.add_argument("--workers", type=int, default=1, help="data-loading processes")
    train_parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    train_parser.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds between checkpoints")
    train_parser.add_argument(
        "--time-limit", type=float, help="minutes of training (over resumes); the LR schedule ends with it"
    )
    train_parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint of --out")
    train_parser.add_argument("--init", type=Path, help="start from these weights (fine-tuning)")
    train_parser.add_argument("--val", type=Path, help="dataset to report AP on at the end")
    train_parser.set_defaults(func=_train)

    eval_parser = subparsers.add_parser("eval", help="COCO bbox and mask AP of a model or of a results file")
    eval_parser.add_argument("--data", type=Path, required=True, help="synth clip dir or COCO dataset dir")
    eval_parser.add_argument(
        "--config", type=Path, help="score the model as `maskstream run CONFIG` runs it (its `model` section)"
    )
    eval_parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model option as `run --set` does, e.g. --set model.tiling.grid=[3,3]",
    )
    eval_parser.add_argument("--weights", type=Path, help="weights (default: the bundled model); sets model.weights")
    eval_parser.add_argument("--arch", help="architecture, for weights without metadata (.pth); sets model.arch")
    eval_parser.add_argument("--predictions", type=Path, help="score this COCO results JSON instead of running a model")
    eval_parser.add_argument("--out", type=Path, help="write the model's COCO results JSON here")
    eval_parser.add_argument("--device", help="auto, cpu, cuda or cuda:N; sets model.device (default: the config's)")
    eval_parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    eval_parser.set_defaults(func=_eval)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size {text!r}: expected comma-separated pixel sizes, e.g. 288,320,352"
        ) from None
    if min(sizes) < 32:
        raise argparse.ArgumentTypeError(f"--size {text!r}: every size must be at least 32 px")
    return sizes


def _train(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        data=args.data,
        arch=args.arch,
        out=args.out,
        steps=args.steps,
        epochs=args.epochs,
        train_sizes=args.size,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        crop=args.crop or None,
        seed=args.seed,
        device=args.device,
        workers=args.workers,
        checkpoint_every_s=args.checkpoint_every,
        time_limit_s=args.time_limit * 60 if args.time_limit else None,
        resume=not args.no_resume,
        init=args.init,
    )
    weights = train(cfg)
    print(f"wrote {weights}")
    if args.val:
        val_cfg = ModelConfig(weights=str(weights), device=args.device)
        result = evaluate(args.val, predict(load_detector(val_cfg), args.val, val_cfg.mask_threshold))
        print(format_table(result))
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.predictions:
        results = load_results(args.predictions)
    else:
        model_cfg = eval_model_config(args)
        results = predict(load_detector(model_cfg), args.data, model_cfg.mask_threshold)
        if args.out:
            args.out.write_text(json.dumps(results))
    result = evaluate(args.data, results)
    print(json.dumps(result.as_dict(), indent=2) if args.json else format_table(result))
    return 0


def eval_model_config(args: argparse.Namespace) -> ModelConfig:
    """The `model` section `maskstream run` would use: config file (or defaults), `--set`, then the shortcuts."""
    overrides = list(args.set)
    shortcuts = {"model.weights": args.weights, "model.arch": args.arch, "model.device": args.device}
    for key, value in shortcuts.items():
        if value is not None:
            overrides.append(f"{key}='{str(value).replace(chr(39), chr(39) * 2)}'")
    return load_model_config(args.config, overrides=overrides)
