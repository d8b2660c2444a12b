"""CPU seconds per DUET training step (tiny ``duet_test`` and the real-size model) at batch 2; prints one JSON object.

Usage::

    python benchmarks/duet_steps.py [--models duet_test,duet_deit_b] [--batch 2] [--steps 3] [--threads 2]
                                    [--cub DIR]

Each model is randomly initialised from its config (``vision_pretrained=none``, ``text_pretrained=none``; the real
size is DeiT-B/16 + a BERT-base with the 30522-token vocabulary, so no download): timing does not depend on the
weights. A step is ``training_loss`` + backward + Adam step, timed separately for the two branches DUET draws per
batch: ``template`` (fixed template + paired-image contrast: 2B images) and ``masked`` (masked class texts, MLM,
attribute contrast: B + 5B images); ``expected_step_s`` = 0.4 x masked + 0.6 x template (mask_prob 0.4). Also the
``torch.no_grad`` evaluation forward. Minimum over ``--steps`` timed steps after one warm-up (and the median; other
processes on the machine inflate those); ``…_cpu_s``: process CPU seconds of the fastest step (all threads).
Attributes: ``duet_test`` the synthetic dataset's 13 (24 seen / 8 unseen classes); the real-size models CUB's 312
names, 28 groups and binarised original_att from ``--cub`` (default ../shared/data/CUB beside the repo) with 150
seen / 50 unseen classes, without it random attributes in 28 generic groups at CUB's density. The in-memory
tokenizer knows CUB's words (the template is 114 tokens long, close to bert-base-uncased's count), so the sequence
lengths are realistic.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from _steps import add_timing_arguments, emit, forward_times, params_m, print_report, start, summary  # noqa: E402

from zsl_bench.models import build_model  # noqa: E402
from zsl_bench.models.base import TrainContext  # noqa: E402

SIZES = {"duet_test": 64, "duet_deit_b": 224, "duet_swin_b": 224}


@dataclass
class _Ctx(TrainContext):
    attribute_info: Any = None
    original_att: torch.Tensor | None = None


@dataclass
class _Names:
    groups: list[str]
    values: list[str]


def synth_like() -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(att [32, 13], original [32, 13], names): one value per synth group for each of 32 random classes."""
    from zsl_bench.data.synth import ATTRIBUTE_GROUPS, attribute_names

    g = torch.Generator().manual_seed(0)
    blocks = [torch.eye(len(v))[torch.randint(len(v), (32,), generator=g)] for v in ATTRIBUTE_GROUPS.values()]
    original = torch.cat(blocks, dim=1)
    names = attribute_names()
    info = _Names([n.split("::")[0] for n in names], [n.split("::")[1] for n in names])
    return torch.nn.functional.normalize(original, dim=1), original, info


def cub_like(cub: Path) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(att [200, 312] L2-normalised, original [200, 312], names) from CUB files, else random at CUB's density."""
    if (cub / "att_splits.mat").is_file() and (cub / "attributes.txt").is_file():
        from zsl_bench.data.attributes import attribute_info
        from zsl_bench.data.xlsa17 import read_att_splits

        split = read_att_splits(cub / "att_splits.mat")
        return torch.as_tensor(split.att), torch.as_tensor(split.original_att), attribute_info("cub", cub, 312)
    g = torch.Generator().manual_seed(0)
    original = torch.rand(200, 312, generator=g) ** 4 * 100  # ~25 % above the global mean
    names = _Names([f"group {i % 28}" for i in range(312)], [f"value {i}" for i in range(312)])
    return torch.nn.functional.normalize(original, dim=1), original, names


def context(att: torch.Tensor, original: torch.Tensor, names: Any, size: int, seed: int) -> TrainContext:
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))

    def sample(rows: torch.Tensor, which: str = "train") -> torch.Tensor:
        return pool[torch.randint(4, (len(rows),), generator=gen)]

    seen = len(att) * 3 // 4  # CUB 150 of 200, synth 24 of 32
    return _Ctx(att, torch.arange(seen), torch.arange(seen, len(att)), 1, gen, sample, names, original)


def step_times(
    model: Any, images: torch.Tensor, ctx_args: tuple, steps: int, masked: bool
) -> tuple[list[float], list[float]]:
    """(wall, process CPU) seconds of training steps of one branch (mask_prob forced to 1 or 0) after a warm-up."""
    from dataclasses import replace

    model.settings = replace(model.settings, mask_prob=1.0 if masked else 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-5)
    target = torch.arange(images.shape[0]) * 7 % (len(ctx_args[0]) * 3 // 4)
    model.train()
    wall, cpu = [], []
    for i in range(steps + 1):
        ctx = context(*ctx_args, seed=i)
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = model.training_loss({"image": images, "target": target}, ctx)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="duet_test,duet_deit_b")
    add_timing_arguments(parser, steps=3)
    parser.add_argument("--cub", type=Path, default=REPO.parent / "shared" / "data" / "CUB")
    args = parser.parse_args()
    load_before = start(args)
    rows = []
    for name in args.models.split(","):
        size = SIZES[name]
        att, original, names = synth_like() if name == "duet_test" else cub_like(args.cub)
        options = {"vision_pretrained": "none", "text_pretrained": "none", "max_length": 250}
        if name != "duet_test" and (args.cub / "att_splits.mat").is_file():  # the words in the local vocabulary
            options.update(dataset="cub", data_root=str(args.cub))
        model = build_model(name, att.shape[1], size, **options)
        images = torch.randn(args.batch, 3, size, size)
        ctx_args = (att, original, names, size)
        template = step_times(model, images, ctx_args, args.steps, masked=False)
        masked = step_times(model, images, ctx_args, args.steps, masked=True)
        row = {
            "model": name,
            "image_size": size,
            "attributes": att.shape[1],
            "params_m": params_m(model),
            "prompt_tokens_template": int(model._template_encoding(images.device).ids.shape[1]),
            **summary("forward", forward_times(model, images, args.steps)),
            **summary("template_step", template[0]),
            **summary("masked_step", masked[0]),
            "expected_step_s": round(0.4 * min(masked[0]) + 0.6 * min(template[0]), 3),
            "template_step_cpu_s": round(min(template[1]), 3),
            "masked_step_cpu_s": round(min(masked[1]), 3),
        }
        emit(rows, row)
    real_size = "CUB" if (args.cub / "att_splits.mat").is_file() else "random (CUB-sized)"
    print_report(args.batch, load_before, rows, real_size_attributes=real_size)


if __name__ == "__main__":
    main()
