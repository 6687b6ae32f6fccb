"""Image grids and PNG files, with TensorFlow's own encoder (no matplotlib, no PIL)."""


import numpy as np
import tensorflow as tf

from gan import files


def to_uint8(images):
    """[-1, 1] floats -> uint8 [0, 255], rounding to nearest."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images, rows, cols, padding=1):
    """[N, H, W, C] uint8 (N <= rows*cols) -> one [rows*(H+p)+p, cols*(W+p)+p, C] image."""
    images = np.asarray(images)
    n, height, width, channels = images.shape
    if n > rows * cols:
        raise ValueError(f"{n} images do not fit a {rows}x{cols} grid")
    grid = np.zeros((rows * (height + padding) + padding, cols * (width + padding) + padding,
                     channels), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = padding + r * (height + padding), padding + c * (width + padding)
        grid[top:top + height, left:left + width] = images[i]
    return grid


def split_grid(grid, rows, cols, padding=1):
    """The inverse of make_grid: [rows*cols, H, W, C] from a grid of rows x cols images."""
    grid = np.asarray(grid)
    height = (grid.shape[0] - padding) // rows - padding
    width = (grid.shape[1] - padding) // cols - padding
    return np.stack([grid[padding + r * (height + padding):][:height,
                          padding + c * (width + padding):][:, :width]
                     for r in range(rows) for c in range(cols)])


def write_png(path, image_uint8):
    """Writes an [H, W, C] uint8 image as PNG."""
    files.write_atomically(path, tf.io.encode_png(image_uint8).numpy())



def row_labels(rows, cols, num_classes):
    """Class labels for a rows x cols grid of a conditional G: row r is class r mod num_classes."""
    return np.repeat(np.arange(rows, dtype=np.int32) % num_classes, cols)
