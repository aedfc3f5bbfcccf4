"""Which torchvision constructor each nets/torchvision/*.net is, and how to test it: one entry per
file. Shared by tests/test_torchvision_nets.py, bench/bench_compile.py and docs/readme_tables.py.

This module imports neither torch nor torchvision (the README table is made without them); the
constructors import torchvision when called.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

NETS = Path(__file__).resolve().parent.parent / "nets" / "torchvision"


@dataclass(frozen=True)
class Model:
    """torchvision's model for one .net file, and what to feed it.

    - `constructor`: the call, in torchvision.models; literal keyword arguments only;
    - `test_input`: the input (one example) the outputs test feeds: the smallest the architecture
      takes where its adaptive pools allow one below the .net's declared input;
    - `sources`: torchvision's files the model is made of, relative to the package, for the
      README's comparison of lengths;
    - `outputs(out)`: torchvision's output as a list in the order of the .net's outputs;
    - `train_only`: the constructor's switches of training-only parts (GoogLeNet's heads),
      which `make(train=False)` turns off;
    - `cpu`: the constructor computes with tensors (RegNet's widths, in BlockParams), which it
      cannot do on torch's meta device: `make` then builds the model on the CPU and moves it there.
    """

    constructor: str
    test_input: tuple[int, ...]
    sources: tuple[str, ...]
    outputs: Callable[[Any], list[Any]] = lambda out: [out]
    train_only: dict[str, Any] = field(default_factory=dict)
    cpu: bool = False

    def make(self, train: bool = True):
        """The model, built as the constructor says (on torch's current default device)."""
        from torchvision import models
        call = ast.parse(self.constructor, mode="eval").body
        fn = models
        for part in ast.unparse(call.func).split("."):
            fn = getattr(fn, part)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        kwargs.update({k: v if train else not v for k, v in self.train_only.items()})
        if self.cpu:
            import torch
            device = torch.get_default_device()
            with torch.device("cpu"):
                return fn(**kwargs).to(device)
        return fn(**kwargs)


def _googlenet(out) -> list[Any]:
    if hasattr(out, "logits"):  # training: GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
        return [out.logits, out.aux_logits1, out.aux_logits2]
    return [out]


MISC = "ops/misc.py"  # Conv2dNormActivation, SqueezeExcitation, Permute
DEPTH = "ops/stochastic_depth.py"

MODELS: dict[str, Model] = {
    "alexnet": Model("alexnet()", (3, 63, 63), ("models/alexnet.py",)),
    "vgg16": Model("vgg16()", (3, 32, 32), ("models/vgg.py",)),
    "googlenet": Model("googlenet(aux_logits=True, transform_input=False, init_weights=False)", (3, 64, 64),
                       ("models/googlenet.py",), _googlenet, {"aux_logits": True}),
    "resnet18": Model("resnet18()", (3, 32, 32), ("models/resnet.py",)),
    "resnext50_32x4d": Model("resnext50_32x4d()", (3, 32, 32), ("models/resnet.py",)),
    "mobilenet_v3_large": Model("mobilenet_v3_large()", (3, 32, 32), ("models/mobilenetv3.py", MISC)),
    "mobilenet_v3_small": Model("mobilenet_v3_small()", (3, 32, 32), ("models/mobilenetv3.py", MISC)),
    "regnet_y_400mf": Model("regnet_y_400mf()", (3, 32, 32), ("models/regnet.py", MISC), cpu=True),
    "efficientnet_b0": Model("efficientnet_b0()", (3, 32, 32), ("models/efficientnet.py", MISC, DEPTH)),
    "efficientnet_v2_s": Model("efficientnet_v2_s()", (3, 32, 32), ("models/efficientnet.py", MISC, DEPTH)),
    "shufflenet_v2_x1_0": Model("shufflenet_v2_x1_0()", (3, 32, 32), ("models/shufflenetv2.py",)),
    "convnext_tiny": Model("convnext_tiny()", (3, 32, 32), ("models/convnext.py", MISC, DEPTH)),
    "lraspp_mobilenet_v3_large": Model(
        "segmentation.lraspp_mobilenet_v3_large(weights_backbone=None)", (3, 224, 224),
        ("models/segmentation/lraspp.py", "models/mobilenetv3.py", MISC), lambda out: [out["out"]]),
    "r3d_18": Model("video.r3d_18()", (3, 4, 32, 32), ("models/video/resnet.py",)),
}


def net_names() -> list[str]:
    """The .net files in nets/torchvision/, by name, in MODELS' order (files without a model last)."""
    names = {p.stem for p in NETS.glob("*.net")}
    return [n for n in MODELS if n in names] + sorted(names - set(MODELS))


def randomise_norms(model):
    """torchvision's random initialisation, and BatchNorm's statistics and affine parameters at
    random too (conftest's `randomise` of every weight makes DenseNet's outputs overflow). Used by
    tests/test_import.py and bench/bench_import.py."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(c, generator=generator) - 0.5)
    return model
