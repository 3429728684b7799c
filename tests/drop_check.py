"""The one independent reference for dropping layers, and `drop_and_check`, which holds every drop to it.

The reference is the UNMODIFIED model with forward hooks that make each skipped layer return its input.
`drop_and_check` drops layers (by any route) and asserts the result computes exactly that, so every test of
surgery, saving, reloading or a command's output uses the same yardstick.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from layerdrop.architectures import layer_modules
from tiny_models import tiny_inputs


@contextmanager
def layers_skipped(model: nn.Module, skip: Sequence[int]) -> Iterator[nn.Module]:
    """Within the block, `model`'s layers at `skip` (original numbering) pass their input through unchanged.

    Hooks count calls per module, so ALBERT's shared layer (one module called L times) works too.
    """
    positions: dict[int, list[int]] = {}
    modules: dict[int, nn.Module] = {}
    for position, layer in enumerate(layer_modules(model)):
        positions.setdefault(id(layer), []).append(position)
        modules[id(layer)] = layer
    handles = []
    for key, module in modules.items():
        calls = [0]

        def hook(module, args, kwargs, output, key=key, calls=calls):
            position = positions[key][calls[0] % len(positions[key])]
            calls[0] += 1
            if position not in skip:
                return output
            hidden = args[0] if args else next(v for k, v in kwargs.items() if k in ("hidden_states", "x", "output_h"))
            return hidden if isinstance(output, torch.Tensor) else (hidden, *output[1:])

        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()


def output_of(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's main output: logits for a head, the last hidden state for a base model."""
    with torch.no_grad():
        output = model(**inputs)
    for name in ("logits", "last_hidden_state"):
        if getattr(output, name, None) is not None:
            return getattr(output, name)
    return output[0]


def drop_and_check(
    model: nn.Module,
    layers: Sequence[int],
    inputs: dict[str, torch.Tensor] | None = None,
    *,
    drop: Callable[[nn.Module, list[int]], nn.Module] | None = None,
    strategy: dict[str, Any] | None = None,
    atol: float = 1e-5,
) -> nn.Module:
    """Drop `layers` from `model` and assert its forward equals the uncut model's with those layers skipped.

    `drop(model, layers)` returns the dropped model (default: `surgery.drop_layers` in place); pass your own to
    check another route, e.g. the CLI writing a checkpoint and `from_pretrained` reading it back. The output
    must also differ from the full model's, so a drop that did nothing cannot pass. Returns the dropped model.
    """
    from layerdrop.surgery import drop_layers

    inputs = inputs if inputs is not None else tiny_inputs()
    reference = copy.deepcopy(model)
    full = output_of(reference, inputs)
    with layers_skipped(reference, list(layers)):
        expected = output_of(reference, inputs)
    dropped = drop(model, list(layers)) if drop is not None else drop_layers(model, list(layers), strategy=strategy)
    got = output_of(dropped, inputs)
    torch.testing.assert_close(got, expected, rtol=atol, atol=atol)
    if layers:
        assert not torch.allclose(got, full, atol=1e-4), "dropping layers should change the output"
    return dropped
