"""MSPAN: one SPAN-class network for several scales. A shared SPAN body (Wan et al., CVPRW 2024: re-parameterisable
3x3 convolutions, parameter-free attention, no batch norm) and a small tail per scale, as MDSR shares EDSR's body
(Lim et al., CVPR-W 2017). The layers are SPAN's own (models/span.py), so a published SPAN file of any scale starts
an MSPAN: its body and its tail land where they belong (`part_key`, `init_from`).

Read top to bottom: starting branches from a deploy kernel, the per-scale tail, the config, the network, the
family.

    x (N, C, H, W), 0..1, and a scale s (one of config.scales)
      -> (x - DIV2K mean) * 255
      -> conv_1 (3x3, C -> F) = feat                                   shared
      -> block_1 .. block_N (SPAB)                                     shared
      -> tail.x{s}: conv_2 (3x3, F -> F)
                    conv_cat (1x1 over [feat, conv_2 out, block_1 out, SiLU(block_N's c1_r out)])
                    upsampler.0 (3x3, F -> C*s*s) + PixelShuffle(s)    one tail per scale
    y (N, C, H*s, W*s), 0..1 (not clipped)

A conditioned MSPAN (`conditions` > 0, the photo model) also takes a condition per image, e.g. (jpeg, noise)
damage from 0 to 1: a small MLP (`modulation`) turns it into a per-channel scale and shift of conv_1's output
and of every block's c1_r output (AdaFM/CResMD-style feature modulation). Both are linear in the conv's output,
so for one condition they fold into those convs' kernels and biases (`specialise`): the conditioned network
becomes a plain MSPAN that runs exactly as fast as the clean one and tiles as exactly.

Every 3x3 convolution but the upsampler's is a `Conv3XC`: with gain g > 0 it trains as branches (a 1x1 skip and
1x1 -> 3x3 -> 1x1 g times as wide) and runs as their exact fold; a saved file keeps the fold (`deploy_state_dict`).
A deploy kernel can be put back into branches (`Conv3XC`'s fold inverted by `unfold_into_branches`), so training
can start from a published deploy file.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from superres.errors import CheckpointError, ConfigError
from superres.models.base import SRNet
from superres.models.edsr import full_precision, to_autocast
from superres.models.family import FamilyConfig, StateDict, register_family
from superres.models.span import (
    MAX_SCALE,
    SPAB,
    Conv3XC,
    SPANFamily,
    bias_of,
    check_body,
    conv3xc_shape,
    deploy_state,
    numbered_blocks,
    pixel_shuffle_scale,
    shape_of,
)


@torch.no_grad()
def unfold_into_branches(layer: Conv3XC, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Set a training-form Conv3XC's branches so that their fold is exactly (weight, bias): the first 1x1 passes
    its inputs on through its first c_in outputs, the 3x3 holds the kernel in its first c_out outputs, the last
    1x1 passes those out, and the skip is zero. The widened layers' other halves keep their random start but
    are cut off from the output by a zero factor next to them (the 3x3's columns that read them, the last 1x1's
    columns that read the 3x3's other half), so the fold is unchanged while every factor still gets a gradient:
    had both factors of a product been zero, training could never move either."""
    assert layer.sk is not None and layer.conv is not None, "a deploy-form Conv3XC has no branches"
    c0, c1, c2 = (m for m in layer.conv if isinstance(m, nn.Conv2d))
    c_out, c_in = weight.shape[:2]
    layer.sk.weight.zero_()
    bias_of(layer.sk).zero_()
    c0.weight[:c_in] = torch.eye(c_in).view(c_in, c_in, 1, 1)
    bias_of(c0).zero_()  # zero padding in, zero out: as the folded conv pads
    c1.weight[:c_out] = 0
    c1.weight[:c_out, :c_in] = weight
    bias_of(c1).zero_()
    bias_of(c1)[:c_out] = bias
    c2.weight.zero_()
    c2.weight[:, :c_out, 0, 0] = torch.eye(c_out)
    bias_of(c2).zero_()
    layer.fold()


class Tail(nn.Module):
    """One scale's part: SPAN's conv_2, conv_cat and upsampler (key names kept, under `tail.x{s}`)."""

    def __init__(self, n_feats: int, mid_feats: int, n_colors: int, scale: int, gain: int) -> None:
        super().__init__()
        self.conv_2 = Conv3XC(n_feats, n_feats, gain)
        self.conv_cat = nn.Conv2d(3 * n_feats + mid_feats, n_feats, 1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(n_feats, n_colors * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(
        self, feat: torch.Tensor, out: torch.Tensor, first_block: torch.Tensor, last_first: torch.Tensor
    ) -> torch.Tensor:
        out = self.conv_cat(torch.cat([feat, self.conv_2(out), first_block, last_first], 1))  # (N, 3F+M -> F, H, W)
        with full_precision(out):  # the upsampler's outputs are pixels
            return self.upsampler(out.to(self.up_conv.weight.dtype))  # (N, C, H*s, W*s)

    @property
    def up_conv(self) -> nn.Conv2d:
        """The upsampler's convolution (before the pixel shuffle)."""
        conv = self.upsampler[0]
        assert isinstance(conv, nn.Conv2d)
        return conv


@dataclass(frozen=True)
class MSPANConfig(FamilyConfig):
    scales: tuple[int, ...] = (2, 3, 4)  # ascending
    n_feats: int = 48
    mid_feats: int = 48  # width inside each block (c1_r's outputs)
    n_blocks: int = 6
    n_colors: int = 3
    # 0: deploy form (one 3x3 conv each). g > 0: each Conv3XC trains as branches g times as wide, folded for inference
    gain: int = 0
    img_range: float = 255.0  # the body sees (x - mean) * img_range, as SPAN's (so SPAN's weights fit)
    rgb_mean: tuple[float, ...] | None = field(default=None)  # None: DIV2K's (its BT.601 luma for one channel)
    conditions: int = 0  # inputs of the modulation (0: none, a plain network); the photo model's are (jpeg, noise)
    cond_hidden: int = 64  # the modulation MLP's hidden width

    def __post_init__(self) -> None:
        scales = tuple(sorted(int(s) for s in self.scales))
        if not scales or len(set(scales)) != len(scales) or not all(1 <= s <= MAX_SCALE for s in scales):
            raise ConfigError(f"scales must be distinct values from 1 to {MAX_SCALE}, got {self.scales}")
        object.__setattr__(self, "scales", scales)
        if self.conditions < 0 or (self.conditions and self.cond_hidden < 1):
            raise ConfigError(
                f"conditions must be >= 0 and cond_hidden >= 1, got {self.conditions}, {self.cond_hidden}"
            )
        check_body(self)

    @property
    def mean(self) -> tuple[float, ...]:
        assert self.rgb_mean is not None
        return tuple(self.rgb_mean)


class MSPAN(SRNet):
    """Multi-scale SPAN: `forward(x, scale)`, x (N, n_colors, H, W) in 0..1 -> (N, n_colors, H*s, W*s), not
    clipped."""

    arch = "mspan"
    config_class = MSPANConfig
    mean: torch.Tensor

    def __init__(self, config: MSPANConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config if config is not None else MSPANConfig(**kwargs)
        self.config = config
        self.metadata = {}
        c, f, m, g = config.n_colors, config.n_feats, config.mid_feats, config.gain
        self.register_buffer("mean", torch.tensor(config.mean).view(1, -1, 1, 1), persistent=False)
        self.conv_1 = Conv3XC(c, f, g)
        for i in range(1, config.n_blocks + 1):
            self.add_module(f"block_{i}", SPAB(f, m, g))
        self.tail = nn.ModuleDict({f"x{s}": Tail(f, m, c, s, g) for s in config.scales})
        self.modulation: nn.Sequential | None = None
        if config.conditions:
            self.modulation = nn.Sequential(
                nn.Linear(config.conditions, config.cond_hidden),
                nn.SiLU(),
                nn.Linear(config.cond_hidden, 2 * (f + config.n_blocks * m)),
            )
            last = self.modulation[2]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)  # starts as the plain network at every condition
            nn.init.zeros_(last.bias)

    def modulations(self, condition: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(scale, shift) pairs, each (N, width, 1, 1), for conv_1 and each block's c1_r, from conditions (N,
        conditions)."""
        assert self.modulation is not None, "a plain MSPAN takes no condition"
        first = self.modulation[0]
        assert isinstance(first, nn.Linear)
        return self._split(self.modulation(condition.to(first.weight.dtype)))

    def _split(self, out: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The modulation MLP's output (N, 2 * (F + blocks * M)) as (scale, shift) pairs per modulated conv."""
        widths = [self.config.n_feats] + [self.config.mid_feats] * self.config.n_blocks
        pairs, start = [], 0
        for w in widths:
            pairs.append((out[:, start : start + w, None, None], out[:, start + w : start + 2 * w, None, None]))
            start += 2 * w
        return pairs

    @torch.no_grad()
    def specialise(self, condition: tuple[float, ...]) -> MSPAN:
        """The plain deploy-form MSPAN that computes this network at one condition: each modulation folded into
        its conv (kernel times 1 + scale, bias times 1 + scale plus shift, in float64)."""
        if self.modulation is None:
            raise ConfigError("a plain MSPAN takes no condition")
        if len(condition) != self.config.conditions:
            raise ConfigError(f"this network takes {self.config.conditions} condition values, got {len(condition)}")
        state = {k: v for k, v in self.deploy_state_dict().items() if not k.startswith("modulation.")}
        mlp = copy.deepcopy(self.modulation).double().cpu()
        mods = self._split(mlp(torch.tensor([condition], dtype=torch.float64)))
        layers = ["conv_1"] + [f"block_{i}.c1_r" for i in range(1, self.config.n_blocks + 1)]
        for layer, (scale, shift) in zip(layers, mods, strict=True):
            w, b = state[f"{layer}.eval_conv.weight"], state[f"{layer}.eval_conv.bias"]
            gain = 1 + scale.view(-1)
            state[f"{layer}.eval_conv.weight"] = (w.double().cpu() * gain.view(-1, 1, 1, 1)).to(w)
            state[f"{layer}.eval_conv.bias"] = (b.double().cpu() * gain + shift.view(-1)).to(b)
        plain = MSPAN(replace(self.config, conditions=0, gain=0)).to(self.mean.device)
        plain.load_state_dict(state)
        plain.metadata = dict(self.metadata)
        return plain.eval()

    def blocks(self) -> list[SPAB]:
        return [getattr(self, f"block_{i}") for i in range(1, self.config.n_blocks + 1)]

    def tail_of(self, scale: int) -> Tail:
        tail = self.tail[f"x{scale}"]
        assert isinstance(tail, Tail)
        return tail

    def deploy_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights with every Conv3XC folded and its branches left out: what a weights file holds."""
        return deploy_state(self)

    def part_key(self, key: str) -> str:
        """`tail.x{s}.*` -> `up.x{s}.*`, the name SPAN's conv_2, conv_cat and upsampler of scale s have too."""
        return "up." + key[len("tail.") :] if key.startswith("tail.") else key

    @torch.no_grad()
    def adopt(self, copied: list[str]) -> list[str]:
        """After `init_from`: a tail that no file had takes conv_2 and conv_cat from the nearest scale's tail that
        a file had, and a tail whose upsampler no file had starts silent (zero kernel, the mean as bias: a flat
        picture), so that its first, large errors do not reach the trained body through it. Deploy kernels
        (`eval_conv`) copied into a training-form network are put into their layers' branches, which `fold`
        would otherwise overwrite them from. Returns the keys filled from other tails."""
        state, filled = self.state_dict(), []
        had = [s for s in self.config.scales if f"tail.x{s}.conv_cat.weight" in copied]
        for s in self.config.scales:
            if s in had or not had:
                continue
            donor = min(had, key=lambda d: (abs(d - s), d))
            for key in state:
                if key.startswith(f"tail.x{donor}.") and ".upsampler." not in key:
                    state[key.replace(f"tail.x{donor}.", f"tail.x{s}.", 1)].copy_(state[key])
                    filled.append(key.replace(f"tail.x{donor}.", f"tail.x{s}.", 1))
        for name, module in self.named_modules():
            if isinstance(module, Conv3XC) and module.has_branches and f"{name}.eval_conv.weight" in copied + filled:
                unfold_into_branches(module, module.eval_conv.weight.clone(), bias_of(module.eval_conv).clone())
        for s in self.config.scales:
            if f"tail.x{s}.upsampler.0.weight" not in copied:
                up = self.tail_of(s).up_conv
                up.weight.zero_()
                bias_of(up).copy_(self.mean.view(-1).repeat_interleave(s * s))
        return filled

    def forward(self, x: torch.Tensor, scale: int | None = None, condition: torch.Tensor | None = None) -> torch.Tensor:
        """condition: (N, conditions) for a conditioned network; None runs it at condition 0."""
        s = self.check_scale(scale)
        mods: list[Any] = [None] * (self.config.n_blocks + 1)
        if self.modulation is not None:
            if condition is None:
                condition = x.new_zeros(x.shape[0], self.config.conditions)
            mods = self.modulations(condition.to(x.device))
        elif condition is not None:
            raise ConfigError("a plain MSPAN takes no condition")
        with full_precision(x):  # the shifted input is not integer-valued: bf16 would lose half a gray level
            x = x.to(self.conv_1.eval_conv.weight.dtype)
            feat = self.conv_1((x - self.mean.to(x.dtype)) * self.config.img_range)  # (N, F, H, W)
            if mods[0] is not None:
                feat = feat * (1 + mods[0][0].to(feat.dtype)) + mods[0][1].to(feat.dtype)
        feat = to_autocast(feat)
        out, first_block, last_first = feat, None, feat
        for block, mod in zip(self.blocks(), mods[1:], strict=True):
            out, last_first = block(out, mod)
            first_block = out if first_block is None else first_block
        assert first_block is not None, "an MSPAN has at least one block"
        return self.tail_of(s)(feat, out, first_block, last_first)


# ---------------------------------------------------------------------------------------------- the family


@register_family
class MSPANFamily(SPANFamily):
    """MSPAN files: SPAN's layers with one `tail.x{s}` per scale, in the deploy form (what superres writes) or the
    training form (branches, folded on loading). Loading, precisions, radius and memory are SPAN's (the same
    layers at every scale)."""

    name = "mspan"
    config_class = MSPANConfig
    key_patterns = (
        r"conv_1\.(eval_conv|sk)\.weight",
        r"block_\d+\.c1_r\.(eval_conv|sk)\.weight",
        r"tail\.x\d+\.conv_cat\.weight",
        r"tail\.x\d+\.upsampler\.0\.weight",
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # SPAN ch48's body and tails at inference (0.41M parameters per scale, 0.49M for three scales), training
        # as branches twice as wide as the paper's
        "mspan": dict(n_feats=48, mid_feats=48, n_blocks=6, gain=2),
        # the same network trained in its deploy form: a third of the training cost, for fine-tuning
        "mspan-deploy": dict(n_feats=48, mid_feats=48, n_blocks=6, gain=0),
        # the photo model: mspan-deploy conditioned on (jpeg, noise) damage, each 0..1 (imaging.degrade.condition)
        "mspan-photo": dict(n_feats=48, mid_feats=48, n_blocks=6, gain=0, conditions=2),
    }

    def read_config(self, state: StateDict, meta: dict[str, Any]) -> MSPANConfig:
        f, c = conv3xc_shape(state, "conv_1")[:2]
        gain = 0
        if "conv_1.conv.0.weight" in state:
            gain = shape_of(state, "conv_1.conv.0.weight")[0] // c
        n_blocks = numbered_blocks(state, r"block_(\d+)\.c1_r\.", "MSPAN blocks")
        m = conv3xc_shape(state, "block_1.c1_r")[0]
        scales = sorted({int(mt.group(1)) for k in state if (mt := re.match(r"tail\.x(\d+)\.", k))})
        for s in scales:
            cat = shape_of(state, f"tail.x{s}.conv_cat.weight")
            if cat != (f, 3 * f + m, 1, 1):
                raise CheckpointError(f"tail.x{s}.conv_cat.weight has shape {cat}; expected {(f, 3 * f + m, 1, 1)}")
            if pixel_shuffle_scale(state, f"tail.x{s}.upsampler.0.weight", c, f) != s:
                raise CheckpointError(f"tail.x{s}.upsampler.0.weight does not make x{s}")
        saved = dict(meta.get("config", {}))
        conditions, hidden = 0, 64
        if "modulation.0.weight" in state:
            hidden, conditions = shape_of(state, "modulation.0.weight")
            widths = 2 * (f + n_blocks * m)
            if shape_of(state, "modulation.2.weight") != (widths, hidden):
                raise CheckpointError(
                    f"modulation.2.weight has shape {shape_of(state, 'modulation.2.weight')}; "
                    f"expected {(widths, hidden)}"
                )
        return MSPANConfig(
            conditions=conditions,
            cond_hidden=hidden,
            scales=tuple(scales),
            n_feats=f,
            mid_feats=m,
            n_blocks=n_blocks,
            n_colors=c,
            gain=gain,
            img_range=float(saved.get("img_range", 255.0)),
            rgb_mean=tuple(saved["rgb_mean"]) if saved.get("rgb_mean") else None,
        )

    def build(self, config: MSPANConfig) -> MSPAN:
        return MSPAN(config)

    def scales(self, config: MSPANConfig) -> tuple[int, ...]:
        return config.scales

    def describe(self, config: MSPANConfig) -> str:
        c = config
        layout = f"training form (gain {c.gain}, folded to 3x3 for inference)" if c.gain else "deploy form"
        mid = f" (mid {c.mid_feats})" if c.mid_feats != c.n_feats else ""
        scales = ", ".join(f"x{s}" for s in c.scales)
        conditioned = f", conditioned on {c.conditions} values" if c.conditions else ""
        return f"MSPAN {scales}, {c.n_blocks} blocks x {c.n_feats} features{mid}{conditioned}, {layout}"

    def forward(self, net: nn.Module, x: torch.Tensor, scale: int) -> torch.Tensor:
        return net(x, scale)

    def preset_config(self, settings: dict[str, Any], scales: tuple[int, ...] | None, n_colors: int) -> MSPANConfig:
        return MSPANConfig(scales=tuple(scales) if scales else (2, 3, 4), n_colors=n_colors, **settings)
