"""Building blocks shared by the segmentation networks.

All blocks are 2-D (the networks see axial slices, with neighbouring slices
stacked as input channels). Normalisation is :class:`torch.nn.BatchNorm2d`:
the networks are trained on 96 x 96 patches and run on whole slices, and
batch normalisation's frozen inference statistics do not depend on the
image extent (group/instance normalisation would see a different mix of
brain and air in a patch than in a slice). It also folds into the
convolutions for fast CPU inference.

References
----------
The full list, with DOIs, is ``docs/references.md``.

.. [1] S. Ioffe, C. Szegedy, "Batch normalization: accelerating deep network
   training by reducing internal covariate shift", ICML 2015, PMLR 37:448--456.
.. [2] O. Ronneberger, P. Fischer, T. Brox, "U-Net: convolutional networks for
   biomedical image segmentation", MICCAI 2015, LNCS 9351:234--241.
   doi:10.1007/978-3-319-24574-4_28 (:class:`DoubleConv`)
.. [3] F. Yu, V. Koltun, "Multi-scale context aggregation by dilated
   convolutions", ICLR 2016, arXiv:1511.07122 (:class:`MultiScaleBlock`)
.. [4] K. He, X. Zhang, S. Ren, J. Sun, "Deep residual learning for image
   recognition", CVPR 2016, 770--778. doi:10.1109/CVPR.2016.90
   (the residual path of :class:`MultiScaleBlock`)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvNormAct", "DoubleConv", "MultiScaleBlock", "norm"]


def norm(channels: int) -> nn.BatchNorm2d:
    """The normalisation layer of every block."""
    return nn.BatchNorm2d(channels)


class ConvNormAct(nn.Sequential):
    """``Conv2d(k, dilation) -> BatchNorm -> ReLU`` with 'same' padding."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> None:
        pad = dilation * (kernel // 2)
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
            norm(cout),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """The classic U-Net stage: two 3x3 ``ConvNormAct``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvNormAct(cin, cout), ConvNormAct(cout, cout))


class MultiScaleBlock(nn.Module):
    """Residual block extracting features at three receptive-field sizes.

    A 3x3 convolution is followed by three parallel 3x3 branches with
    dilations 1, 2 and 4 (receptive fields 5, 9 and 17 pixels on top of the
    first convolution), concatenated, fused by a 1x1 convolution and added to
    a 1x1 projection of the input. The dilated branches see cortical ribbon
    context and whole-gyrus context at the cost of a plain 3x3 convolution.

    Parameters
    ----------
    cin, cout : int
        Input and output channels; the branches get ``cout/2``, ``cout/4``,
        ``cout/4`` channels.
    """

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        c1 = cout // 2
        c2 = (cout - c1) // 2
        c3 = cout - c1 - c2
        self.entry = ConvNormAct(cin, cout)
        self.branches = nn.ModuleList(
            [ConvNormAct(cout, c, 3, dilation=d) for c, d in ((c1, 1), (c2, 2), (c3, 4))]
        )
        self.fuse = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), norm(cout))
        self.skip = (
            nn.Identity() if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), norm(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.entry(x)
        h = torch.cat([b(h) for b in self.branches], dim=1)
        return self.act(self.fuse(h) + self.skip(x))
