"""Neural style transfer: the Gram matrix that measures a picture's style.

Gatys, Ecker and Bethge, 2016, *Image Style Transfer Using Convolutional Neural Networks*,
https://openaccess.thecvf.com/content_cvpr_2016/html/Gatys_Image_Style_Transfer_CVPR_2016_paper.html.
A layer's feature maps ``F`` (C channels of H x W) describe *where* things are; their Gram matrix
``G = F F^T``, the correlations between channels summed over all positions, keeps *which*
features occur together and forgets where: texture, i.e. style.

Introduced in chapter 23, *Neural style transfer*.
"""

from __future__ import annotations

from torch import Tensor

from companion._checks import check_tensor


def gram_matrix(features: Tensor) -> Tensor:
    """The normalised Gram matrix of each feature map: ``F @ F^T / (C * H * W)``.

    Dividing by ``C * H * W`` makes layers of different sizes comparable, so that no layer
    dominates the style loss just because it is large.

    Args:
        features (Tensor[N, C, H, W]): feature maps.

    Returns:
        Tensor[N, C, C]: ``G[n, i, j] = sum_p F[n, i, p] F[n, j, p] / (C H W)``.
    """
    check_tensor(features, "features", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)  # (N, C, H*W)
    return flat @ flat.transpose(1, 2) / (c * h * w)  # (N, C, C)
