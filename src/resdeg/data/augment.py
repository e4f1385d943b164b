"""The paper's CIFAR-10 augmentation, done on a whole batch of tensors at once.

Section 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from
the padded image or its horizontal flip." Padding is with zeros on the mean-subtracted
image (as the authors' Torch code does), so a padded pixel is the mean pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_crop_flip(images: torch.Tensor, padding: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image: a uniformly random crop of the zero-padded image, flipped with probability 1/2.

    Same distribution as torchvision's RandomCrop(size, padding) + RandomHorizontalFlip,
    applied to every image of the batch independently, on the batch's device.

    The offsets and flips are drawn on the generator's device: with a generator on the
    batch's device (as the training stream makes one) nothing is copied from the host, so a
    GPU step never waits for Python. CPU and CUDA generators give different streams for one
    seed: a run is exact on resume on the kind of device it trained on.
    """
    n, c, h, w = images.shape
    device = images.device
    draw_on = generator.device if generator is not None else device
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), device=draw_on, generator=generator).to(
        device, non_blocking=True
    )
    flips = torch.rand(n, device=draw_on, generator=generator).lt(0.5).to(device, non_blocking=True)
    rows = offsets[0].view(n, 1) + torch.arange(h, device=device).view(1, h)  # (n, h)
    cols = offsets[1].view(n, 1) + torch.arange(w, device=device).view(1, w)  # (n, w)
    # a flipped crop reads its columns right to left
    cols = torch.where(flips.view(n, 1), cols.flip(1), cols)
    batch_index = torch.arange(n, device=device).view(n, 1, 1, 1)
    channel_index = torch.arange(c, device=device).view(1, c, 1, 1)
    return padded[batch_index, channel_index, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]
