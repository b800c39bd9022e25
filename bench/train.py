"""Training-step speed: the fp32 reference form against the fast path, interleaved in one run.

    python -m bench.train                       # reference setting + CPU recipe (about 11 min on a quiet machine)
    python -m bench.train --settings cpu        # the CPU recipe only
    python -m bench.train --quick               # smoke run: tiny clouds, one round

Steps (train mode; batch B objects, each step sees 2B point clouds and B images where it has them):
- `crosspoint`: the pretraining step (`crosspoint.train.pretrain.forward_loss`): both point views in
  one forward of 2B clouds + one rendered view through the image branch, intra + cross NT-Xent,
  backward, Adam;
- `backbone`: the point branch alone: forward_features + project of 2B clouds, intra NT-Xent,
  backward, Adam;
- `classifier`: fine-tuning a DGCNN classifier end to end: forward_features + MLP head of B clouds,
  cross-entropy, backward, AdamW;
- `partseg`: `dgcnn_partseg` on B clouds with a category one-hot, cross-entropy over points,
  backward, SGD.
Forms (same batch, same threads):
- `reference`: the training form before the fast path: EdgeConv on the N*k edge tensor
  (`edgeconv="edge"`), conv5 as the 1x1 Conv1d, fp32;
- `today`: what training ran before the fast path: the per-point EdgeConv conv with the N*k gather,
  BN, LeakyReLU and max (`edgeconv="point"`, unfused), Conv1d conv5, fp32;
- `fast-fp32`: the fast path in fp32: fused EdgeConv (`crosspoint/models/_edgeconv.py`), conv5 as
  one GEMM on rows;
- `fast`: the fast path with bf16 autocast (`--precision bf16`, the default on this CPU).
Forms are interleaved per (setting, step) with a rotating order; clouds/s = B / p50 step time;
`x ref` = p50 ratio against `reference` (higher is faster). A profiler table (by operator, self CPU
time) for one `crosspoint` step of `reference` and `fast` says where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import interleave, summarize
from bench.report import Report

FORMS = {
    "reference": "EdgeConv on the N*k edge tensor, Conv1d conv5, fp32 (the reference training form)",
    "today": "per-point EdgeConv conv + N*k gather/BN/max (unfused), Conv1d conv5, fp32 (before this path)",
    "fast-fp32": "fused EdgeConv (no edge tensor), conv5 as a GEMM on rows, fp32",
    "fast": "fused EdgeConv, conv5 GEMM, bf16 autocast (--precision bf16)",
}
STEPS = ("crosspoint", "backbone", "classifier", "partseg")


@dataclass(frozen=True)
class Setting:
    name: str
    num_points: int
    k: int
    batch: int
    image_encoder: str
    image_size: int
    partseg_points: int
    partseg_k: int
    partseg_batch: int

    def describe(self) -> str:
        return (
            f"`{self.name}`: {self.num_points} points, k={self.k}, batch {self.batch} "
            f"({2 * self.batch} point clouds per step), {self.image_encoder} at {self.image_size} px; "
            f"partseg {self.partseg_points} points, k={self.partseg_k}, batch {self.partseg_batch}"
        )


SETTINGS = {
    # The paper's pretraining setting (partseg reduced from 2048 points / k=40 / batch 8 to fit here).
    "reference": Setting("reference", 1024, 20, 20, "resnet50_image", 224, 1024, 20, 8),
    # The CPU recipe (crosspoint/train/pretrain.py docstring).
    "cpu": Setting("cpu", 512, 10, 20, "resnet18_image", 64, 512, 20, 8),
    "quick": Setting("quick", 128, 8, 4, "resnet18_image", 32, 128, 8, 4),
}


@contextlib.contextmanager
def form_context(form: str) -> Iterator[None]:
    """`reference` and `today` run with the fused EdgeConv switched off (what the code did before it)."""
    from crosspoint.models import dgcnn, partseg

    saved = dgcnn.fused_applies, partseg.fused_applies
    if form in ("reference", "today"):
        dgcnn.fused_applies = partseg.fused_applies = lambda x: False
    try:
        yield
    finally:
        dgcnn.fused_applies, partseg.fused_applies = saved


def legacy_features(model: Any, points: Any) -> Any:
    """DGCNN.forward_features as it was before the fast path: conv5 as a 1x1 Conv1d on [B, 512, N]."""
    import torch

    x = points.transpose(2, 1)
    x1 = model.edge1(x)
    x2 = model.edge2(x1)
    x3 = model.edge3(x2)
    x4 = model.edge4(x3)
    x = model.conv5(torch.cat((x1, x2, x3, x4), dim=1))
    return torch.cat((x.amax(dim=-1), x.mean(dim=-1)), dim=1)


def _features(form: str) -> Callable[[Any, Any], Any]:
    if form in ("reference", "today"):
        return legacy_features
    return lambda model, points: model.forward_features(points)


def make_step(kind: str, form: str, setting: Setting, seed: int = 0) -> Callable[[], None]:
    """One training step of `kind` in `form`, on fixed real shapes (views jittered) and random images."""
    import torch
    import torch.nn.functional as F

    from bench.inputs import prepared_batch
    from crosspoint.losses import crosspoint_loss, nt_xent, smoothed_cross_entropy
    from crosspoint.models import create_model
    from crosspoint.train import runtime as rt

    torch.manual_seed(seed)
    cpu = torch.device("cpu")
    precision = "bf16" if form == "fast" else "fp32"
    edgeconv = "edge" if form == "reference" else "point"
    features = _features(form)
    b = setting.batch if kind in ("crosspoint", "backbone") else setting.partseg_batch
    n = setting.partseg_points if kind == "partseg" else setting.num_points
    clouds, _ = prepared_batch("embed", b, n)
    points = torch.from_numpy(clouds["points"])
    views = torch.cat((points, points + 0.01 * torch.randn_like(points)))

    if kind in ("crosspoint", "backbone"):
        point = create_model("dgcnn", k=setting.k, edgeconv=edgeconv).train()
        image = create_model(setting.image_encoder).train() if kind == "crosspoint" else None
        params = [*point.parameters(), *(image.parameters() if image is not None else [])]
        adam = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-6)
        images = torch.randn(b, 3, setting.image_size, setting.image_size)

        def pretrain_step() -> None:
            with form_context(form), rt.autocast(cpu, precision):
                z_points = point.project(features(point, views))  # type: ignore[operator]
                z_image = image(images) if image is not None else None
            z1, z2 = z_points.chunk(2)
            loss = nt_xent(z1, z2) if z_image is None else crosspoint_loss(z1, z2, z_image).total
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()

        return pretrain_step

    labels = torch.randint(0, 40, (b,))
    if kind == "classifier":
        model = create_model("dgcnn", k=setting.k, edgeconv=edgeconv, num_classes=40, head="mlp").train()
        adamw = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def classifier_step() -> None:
            with form_context(form), rt.autocast(cpu, precision):
                logits = model.forward_head(features(model, points))  # type: ignore[operator]
            loss = smoothed_cross_entropy(logits.float(), labels)
            adamw.zero_grad(set_to_none=True)
            loss.backward()
            adamw.step()

        return classifier_step

    seg = create_model("dgcnn_partseg", k=setting.partseg_k).train()
    sgd = torch.optim.SGD(seg.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    onehot = F.one_hot(labels % 16, 16).float()
    part_labels = torch.randint(0, 50, (b, n))

    def partseg_step() -> None:
        with form_context(form), rt.autocast(cpu, precision):
            logits = seg(points, onehot).float()
        loss = smoothed_cross_entropy(logits.reshape(-1, 50), part_labels.reshape(-1))
        sgd.zero_grad(set_to_none=True)
        loss.backward()
        sgd.step()

    return partseg_step


def profile_step(step: Callable[[], None], top: int) -> list[dict[str, Any]]:
    """The operators of one step by self CPU time (torch.profiler), largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "self_ms": e.self_cpu_time_total / 1000,
            "pct": 100 * e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:top]
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", nargs="+", default=["reference", "cpu"], choices=list(SETTINGS))
    parser.add_argument("--steps", nargs="+", default=None, choices=STEPS, help="default: all")
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument(
        "--extra-forms",
        nargs="+",
        default=["reference", "fast"],
        choices=list(FORMS),
        help="forms for the steps other than `crosspoint` (fewer: the run stays short)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per (setting, step)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=300.0, help="per (setting, step), after 2 rounds")
    parser.add_argument("--profile-top", type=int, default=12, help="operators per profile (0: no profile)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny setting, one round")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.settings = ["quick"]
        args.repeats, args.warmup, args.profile_top = 1, 0, 5
    args.steps = args.steps or list(STEPS)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    report = Report("train", argv)
    from crosspoint.train.runtime import bf16_supported

    report.note(
        "Forms: "
        + "; ".join(f"`{name}` = {what}" for name, what in FORMS.items())
        + f". Settings: {'; '.join(SETTINGS[s].describe() for s in args.settings)}. "
        f"{args.threads} threads (torch.set_num_threads); CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, bf16 in hardware: "
        f"{bf16_supported(torch.device('cpu'))}. Real ModelNet40 shapes (second view jittered), random "
        f"images and labels; forms interleaved per (setting, step) with rotating order after "
        f"{args.warmup} warm-up round(s); clouds/s = batch / p50 step time; `x ref` = p50 ratio against "
        "`reference`, `x today` against `today` (higher is faster)."
    )
    rows: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for name in args.settings:
        setting = SETTINGS[name]
        for kind in args.steps:
            forms = args.forms if kind == "crosspoint" else [f for f in args.extra_forms if f in args.forms]
            steps = {form: make_step(kind, form, setting) for form in forms}
            times = interleave(
                steps,
                repeats=args.repeats,
                min_repeats=min(2, args.repeats),
                budget_s=args.budget_s,
                warmup=args.warmup,
            )
            stats = {form: summarize(times[form]) for form in forms}
            batch = setting.batch if kind in ("crosspoint", "backbone") else setting.partseg_batch
            for form in forms:
                s = stats[form]
                row: dict[str, Any] = {"setting": name, "step": kind, "form": form, "batch": batch, **s}
                row["p50_s"] = s["p50_ms"] / 1000
                row["clouds_per_s"] = batch / row["p50_s"]
                for base in ("reference", "today"):
                    if base in stats:
                        row[f"x_vs_{base}"] = stats[base]["p50_ms"] / s["p50_ms"]
                rows.append(row)
            print(
                f"{name} {kind}: " + ", ".join(f"{f} {stats[f]['p50_ms'] / 1000:.2f} s" for f in forms),
                flush=True,
            )
            if kind == "crosspoint" and args.profile_top:
                for form in ("reference", "fast"):
                    if form in steps:
                        for op in profile_step(steps[form], args.profile_top):
                            profiles.append({"setting": name, "form": form, **op})
            del steps
    report.table(
        "throughput",
        "Training steps: clouds/s and ratios",
        rows,
        [
            ("setting", "setting", "{}"),
            ("step", "step", "{}"),
            ("form", "form", "{}"),
            ("batch", "batch", "{}"),
            ("clouds_per_s", "clouds/s", "{:.2f}"),
            ("p50_s", "p50 s/step", "{:.2f}"),
            ("n", "steps", "{}"),
            ("x_vs_reference", "x ref", "{:.2f}"),
            ("x_vs_today", "x today", "{:.2f}"),
        ],
    )
    if profiles:
        report.table(
            "profile",
            "Where the time goes: one `crosspoint` step, operators by self CPU time (torch.profiler)",
            profiles,
            [
                ("setting", "setting", "{}"),
                ("form", "form", "{}"),
                ("op", "operator", "{}"),
                ("self_ms", "self ms", "{:.0f}"),
                ("pct", "% of step", "{:.1f}"),
                ("calls", "calls", "{}"),
            ],
        )
    report.data["forms"] = FORMS
    report.data["settings"] = {s: SETTINGS[s].__dict__ for s in args.settings}
    report.write(args.out)


if __name__ == "__main__":
    main()
