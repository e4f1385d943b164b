"""The order in which training images are read, as a pure function of the iteration.

The images are read as an endless sequence of random permutations of the training set
(permutation e seeded by (seed, e)); iteration k takes the next batch_size images of that
sequence, so every image appears exactly once per epoch of N images and every batch is
full. Nothing depends on how many batches were drawn before: a run resumed at iteration k
reads exactly the images the uninterrupted run read from k on. Lightning, left to itself,
restarts a mid-epoch checkpoint at the next epoch boundary; this order is what makes
resuming exact for both CIFAR-10 and ImageNet.
"""

from __future__ import annotations

import torch


class IterationOrder:
    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self._permutations: dict[int, torch.Tensor] = {}

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def permutation(self, epoch: int) -> torch.Tensor:
        """The image order of epoch ``epoch``; the last two are kept (a batch can straddle two)."""
        if epoch not in self._permutations:
            if len(self._permutations) >= 2:
                del self._permutations[min(self._permutations)]
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            permutation = torch.randperm(self.n, generator=generator)
            if torch.device(self.device).type == "cuda":  # copied without making the host wait
                permutation = permutation.pin_memory()
            self._permutations[epoch] = permutation.to(self.device, non_blocking=True)
        return self._permutations[epoch]

    def indices(self, iteration: int) -> torch.Tensor:
        """The images of iteration ``iteration`` (a global batch)."""
        n = self.n
        first, last = iteration * self.batch_size, (iteration + 1) * self.batch_size
        epoch, offset = divmod(first, n)
        if last <= (epoch + 1) * n:
            return self.permutation(epoch)[offset : offset + self.batch_size]
        head = self.permutation(epoch)[offset:]
        return torch.cat([head, self.permutation(epoch + 1)[: self.batch_size - len(head)]])

    def iterations_to_epoch_end(self, start: int) -> range:
        """Iterations from ``start`` to the end of Lightning's epoch (batches_per_epoch iterations);
        Lightning asks for a new iterator at every epoch start and at a resumed iteration."""
        return range(start, (start // self.batches_per_epoch + 1) * self.batches_per_epoch)
