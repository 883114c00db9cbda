"""A trial's pictures are the grids torchvision draws, without importing torchvision in the
trial's worker (it costs ~1.5 s per process)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sweeps.trial.pictures import save_grid


@pytest.mark.parametrize("channels, count, nrow", [(1, 10, 4), (3, 6, 9), (1, 18, 9)])
def test_the_grid_is_torchvisions_pixel_for_pixel(tmp_path, channels, count, nrow):
    from torchvision.utils import save_image

    frames = torch.rand(count, channels, 12, 9, generator=torch.Generator().manual_seed(count))
    ours = save_grid(frames, tmp_path / "ours.png", nrow=nrow)
    save_image(frames, tmp_path / "theirs.png", nrow=nrow, padding=2, pad_value=0.5)
    theirs = np.asarray(Image.open(tmp_path / "theirs.png"))
    mine = Image.open(ours)
    assert mine.mode == ("L" if channels == 1 else "RGB")  # grey kept one channel: 1/3 the bytes
    assert theirs.shape[2] == 3 and np.array_equal(np.asarray(mine.convert("RGB")), theirs)


def test_a_trials_worker_does_not_import_torchvision():
    code = "import sys, sweeps.trial.trainable; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
