"""Classifiers that look at a wide image tile by tile: trained on tiles (data/tile_dataset.py), they score a whole
image as each output's largest logit over evenly spaced tiles that cover it. A thin crack a pixel wide at full
resolution vanishes when a 1600-pixel strip is shrunk to 416; a 256-pixel tile at full resolution costs about
what the shrunk strip does and keeps it (`train ... --tile-width`)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def tile_starts(width: int, tile: int) -> list[int]:
    """Left edges of the fewest `tile`-wide windows that cover `width` columns, evenly spaced (the last one ends
    at the right edge, so neighbours overlap a little when `tile` does not divide `width`)."""
    if tile >= width:
        return [0]
    count = -(-width // tile)
    return [round(i * (width - tile) / (count - 1)) for i in range(count)]


def tile_max(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int) -> torch.Tensor:
    """Each output's largest logit over the tiles of x (N, C, H, W): the tiles of every image run as one batch."""
    starts = tile_starts(int(x.shape[-1]), tile)  # the width is fixed per run (an export's is static too)
    logits = forward(torch.cat([x[..., s : s + tile] for s in starts], dim=0))
    # Tile-major batch: (tiles * N, K) -> (tiles, N, K); N stays symbolic for an export with a dynamic batch.
    return logits.reshape(len(starts), -1, logits.shape[-1]).amax(dim=0)


class TileableClassifier(nn.Module):
    """Base of the classifiers. `tile_width` None (the default): the whole image at once, as before. Otherwise
    images wider than it are scored tile by tile (tile_max). It is a setting, not a weight: build_model sets it
    from the run's config, so state dicts are the same either way."""

    tile_width: int | None = None

    def forward_image(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    map_channels: int  # channels of the stride-16 feature map forward_with_map returns

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits of the whole image, its stride-16 feature map): training with --mask-aux (models/mask_probe.py)."""
        raise NotImplementedError

    def start_at_prior(self, shares) -> None:
        """Set the output layer's bias so that the untrained model gives each output its share of positive
        training draws (the prior-probability start of Lin et al. 2017's focal loss), instead of 0.5 everywhere: the
        first epochs then learn the classes instead of first pulling every output down to its frequency."""
        last = [m for m in self.modules() if isinstance(m, nn.Linear)][-1]
        p = torch.as_tensor(shares, dtype=last.bias.dtype).clamp(0.01, 0.99)
        if p.shape != last.bias.shape:
            raise ValueError(f"{len(p)} shares for {last.bias.numel()} outputs")
        with torch.no_grad():
            last.bias.copy_(torch.log(p / (1 - p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tile_width is None or int(x.shape[-1]) <= self.tile_width:
            return self.forward_image(x)
        return tile_max(self.forward_image, x, self.tile_width)
