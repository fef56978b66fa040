"""Parameter and FLOP counts of the networks.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` for one
forward pass at batch 1 and ``size x size``; that tool counts a multiply-add as
2 FLOPs and only counts matmul/convolution-type operators (normalisation,
activations, pooling, interpolation and element-wise ops are not counted).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _example_inputs(module: nn.Module, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    image = torch.rand(1, 3, size, size, device=device)
    if getattr(module, "uses_focus_map", False):
        return image, torch.rand(1, 1, size, size, device=device)
    return (image,)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, size: int = 160) -> int:
    """FLOPs (multiply-add = 2) of one eval-mode forward at 1 x 3 x size x size."""
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(*_example_inputs(module, size, device))
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def summarize(modules: dict[str, nn.Module], size: int = 160) -> list[dict]:
    """Rows ``{"name", "parameters", "gflops"}``, one per network, in dict order."""
    return [
        {"name": name, "parameters": count_parameters(m), "gflops": count_flops(m, size) / 1e9}
        for name, m in modules.items()
    ]


def format_summary(rows: list[dict]) -> str:
    """A small aligned text table of :func:`summarize`'s rows."""
    header = ("network", "parameters", "GFLOPs")
    body = [(str(r["name"]), f"{r['parameters']:,}", f"{r['gflops']:.2f}") for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(3)]

    def fmt(line: tuple[str, str, str]) -> str:
        return f"{line[0]:<{widths[0]}}  {line[1]:>{widths[1]}}  {line[2]:>{widths[2]}}"

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), sep, *(fmt(line) for line in body)])
