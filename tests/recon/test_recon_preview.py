"""The software preview renders the mesh, in its colours, without a GPU."""

import numpy as np

from betterdepth_engine.recon import ReconOptions, reconstruct, render_preview
from betterdepth_engine.recon.preview import BACKGROUND, rasterize
from tests.recon.scenes import sphere_on_wall


def test_rasterize_covers_a_square_exactly():
    screen = np.float32([[1, 1], [5, 1], [1, 5], [5, 5]])
    faces = np.int32([[0, 2, 3], [0, 3, 1]])
    nearest, weights = rasterize(screen, np.ones(4, np.float32), faces, (8, 8))
    covered = nearest >= 0
    assert covered[1:6, 1:6].all() and covered.sum() == 25
    np.testing.assert_allclose(weights[covered].sum(axis=1), 1, atol=1e-6)


def test_nearer_faces_win():
    screen = np.float32([[0, 0], [9, 0], [0, 9], [0, 0], [9, 0], [0, 9]])
    depth = np.float32([2, 2, 2, 1, 1, 1])
    nearest, _ = rasterize(screen, depth, np.int32([[0, 1, 2], [3, 4, 5]]), (10, 10))
    assert set(np.unique(nearest[nearest >= 0])) == {1}


def test_preview_shows_the_mesh():
    mesh = reconstruct(sphere_on_wall(), options=ReconOptions(focal_px=60))
    image = render_preview(mesh, width=200)
    assert image.dtype == np.uint8 and image.shape[1] == 200 and image.shape[2] == 3
    background = np.rint(BACKGROUND * 255).astype(np.uint8)
    assert (np.abs(image.astype(int) - background).sum(axis=2) > 10).mean() > 0.3
