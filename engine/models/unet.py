"""``unet``: the plain 2-D U-Net baseline (Ronneberger et al. 2015, ``docs/references.md``).

Encoder of :class:`~engine.models.blocks.DoubleConv` stages with max-pooling,
bilinear upsampling in the decoder, skip connections by concatenation at the
same scale only, one 1x1 output head. Input: ``in_channels`` adjacent axial
slices (2.5-D); output: per-pixel logits of ``n_classes`` labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from .blocks import ConvNormAct, DoubleConv

__all__ = ["UNet"]


class UNet(nn.Module):
    """Plain U-Net.

    Parameters
    ----------
    in_channels : int
        Number of stacked slices (1 for 2-D, 3 for 2.5-D).
    n_classes : int
        Output labels (4: background, CSF, GM, WM).
    base : int
        Channels of the first stage; doubled at each level.
    depth : int
        Number of resolution levels (the input size must be divisible by
        ``2 ** (depth - 1)``).

    References
    ----------
    .. [1] O. Ronneberger, P. Fischer, T. Brox, "U-Net: convolutional networks
       for biomedical image segmentation", MICCAI 2015, LNCS 9351:234--241.
       doi:10.1007/978-3-319-24574-4_28
    .. [2] S. Ioffe, C. Szegedy, "Batch normalization: accelerating deep network
       training by reducing internal covariate shift", ICML 2015, PMLR
       37:448--456 (the normalisation of every block).
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 4, base: int = 16,
                 depth: int = 4) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "n_classes": n_classes, "base": base,
                       "depth": depth}
        chans = [base * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.down.append(DoubleConv(cin, c))
            cin = c
        self.up = nn.ModuleList()
        for i in range(depth - 2, -1, -1):
            self.up.append(nn.Sequential(ConvNormAct(chans[i + 1] + chans[i], chans[i]),
                                         ConvNormAct(chans[i], chans[i])))
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (self.config["depth"] - 1)

    def forward(self, x: torch.Tensor, deep: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """Logits ``(B, n_classes, H, W)``; with ``deep=True`` a one-element list."""
        skips = []
        for i, stage in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            skips.append(x)
        for j, stage in enumerate(self.up):
            skip = skips[-2 - j]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skip], dim=1))
        out = self.head(x)
        return [out] if deep else out
