"""Datasets: an IDX reader, file location and verification, and in-graph batch sampling.

`load(name, split)` returns a `Dataset` with the uint8 pixels, their float32 NHWC images in [-1, 1]
(x / 127.5 - 1, as the seed scales them; made on first use) and integer labels. MNIST ships inside the package, so it works offline;
Fashion-MNIST is looked for in --data_dir, then in Debian's `dataset-fashion-mnist` install, then
downloaded from the dataset's own mirror into a cache directory.

Every file is checked against the SHA-256 of its decompressed IDX content (gzip settings differ
between copies of the same data, so the .gz bytes cannot be used).
"""

import dataclasses
import functools
import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request

import numpy as np
import tensorflow as tf

from gan import registry
from gan.errors import DataError

PACKAGE_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "datasets")
DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "gan")

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# SHA-256 of each decompressed IDX file.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
DATASETS = ("mnist", "fashion_mnist")


def _read_bytes(path):
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as e:  # truncated or damaged gzip stream
        raise DataError(f"{path}: cannot be read as gzip ({e})") from None


def parse_idx(raw, path="<bytes>", expected_magic=None):
    """Parses IDX bytes (unsigned-byte data) into a uint8 array, checking magic, dims and size."""
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{path}: wrong magic number {magic} (0x{magic:08x}); expected "
                        f"{expected_magic} (0x{expected_magic:08x})")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: magic 0x{magic:08x} is not an unsigned-byte IDX file")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes, {header_size} needed)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header_size + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {problem}: header says shape {shape} ({expected} bytes), "
                        f"file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx(path, expected_magic=None, sha256=None):
    """Reads an IDX file (raw or .gz); verifies the decompressed content's SHA-256 when given."""
    raw = _read_bytes(path)
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            # A wrong-size file gets the more specific message of parse_idx.
            parse_idx(raw, path, expected_magic)
            raise DataError(f"{path}: checksum mismatch: SHA-256 of the decompressed content is "
                            f"{digest}, expected {sha256}; the file is corrupted or is not this "
                            f"dataset")
    return parse_idx(raw, path, expected_magic)


def read_images_and_labels(images_path, labels_path, images_sha256=None, labels_sha256=None):
    images = read_idx(images_path, IMAGES_MAGIC, images_sha256)
    labels = read_idx(labels_path, LABELS_MAGIC, labels_sha256)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_path} has {images.shape[0]} images but {labels_path} has "
                        f"{labels.shape[0]} labels; they must match")
    return images, labels


def _find_in_dir(directory, stem):
    """Path of `stem` or `stem.gz` in directory, or None."""
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def _download(stem, cache_dir, checksum):
    """Downloads stem.gz from the Fashion-MNIST mirror into cache_dir; verifies; returns the path."""
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, stem + ".gz")
    fd, partial = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(FASHION_MIRROR + stem + ".gz",
                                                                timeout=30) as response:
            shutil.copyfileobj(response, out)
        with gzip.open(partial, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != checksum:
            raise DataError(f"{FASHION_MIRROR}{stem}.gz: downloaded file fails its checksum")
        os.replace(partial, target)  # atomic: a half-downloaded file never has the real name
        return target
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def locate_files(name, split, data_dir=None, cache_dir=None, allow_download=True):
    """Returns (images_path, labels_path) for a dataset split, or raises DataError listing every
    place that was tried and how to provide the files."""
    registry.lookup(DATASETS, name, "dataset", DataError)
    stems = registry.lookup(SPLIT_FILES, split, "split", DataError)
    places = []
    if data_dir:
        if not os.path.isdir(data_dir):
            raise DataError(f"--data_dir={data_dir}: no such directory; expected a directory "
                            f"holding the {name} IDX files")
        places.append(data_dir)
    if name == "mnist":
        places.append(os.path.join(PACKAGE_DATA_DIR, "mnist"))
    else:
        places.append(DEBIAN_FASHION_DIR)
        places.append(os.path.join(cache_dir or DEFAULT_CACHE_DIR, name))
    for directory in places:
        paths = [_find_in_dir(directory, stem) for stem in stems]
        if all(paths):
            return tuple(paths)
    tried = [f"{d} (no {' / '.join(s + '[.gz]' for s in stems)})" for d in places]
    download_error = None
    if name == "fashion_mnist" and allow_download:
        try:
            return tuple(_download(stem, places[-1], CHECKSUMS[name][stem]) for stem in stems)
        except (OSError, DataError) as e:
            download_error = f"download from {FASHION_MIRROR} ({e})"
    how = ("reinstall the package (pip install -e .)" if name == "mnist" else
           "`apt-get install dataset-fashion-mnist`, or put the four IDX files (as published at "
           f"{FASHION_MIRROR}) in a directory and pass --data_dir")
    # One line, as every error a user sees.
    raise DataError(f"{name} {split} files not found; tried: " + "; ".join(
        tried + ([download_error] if download_error else [])) + f". To provide them: {how}.")


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    split: str
    pixels: np.ndarray  # uint8 [N, 28, 28], as stored
    labels: np.ndarray  # int32 [N]

    @functools.cached_property
    def images(self):
        """float32 [N, 28, 28, 1] in [-1, 1]. Made on first use: training reads the pixels, which
        are a quarter of the size (47 MB against 188 MB at MNIST's training set)."""
        return to_unit_range(self.pixels)

    @property
    def num_examples(self):
        return self.pixels.shape[0]


def to_unit_range(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1], NHWC."""
    # In place: the same float32 operations as `x / 127.5 - 1.0`, without its two temporary
    # copies (376 MB at MNIST's training set, most of a training run's peak memory beyond
    # TensorFlow's own).
    images = images_uint8.astype(np.float32)
    images /= np.float32(127.5)
    images -= np.float32(1.0)
    return images[..., None]


# Every uint8 value's float32 image, made by to_unit_range itself, so that a batch looked up from
# it in-graph is bit for bit the batch gathered from `Dataset.images`.
UNIT_RANGE_TABLE = to_unit_range(np.arange(256, dtype=np.uint8))[:, 0]


def batch_to_unit_range(batch):
    """An in-graph batch of uint8 pixels [B, 28, 28] -> float32 [B, 28, 28, 1] in [-1, 1], equal to
    to_unit_range; a float batch (already images) passes through."""
    if batch.dtype != tf.uint8:
        return batch
    return tf.gather(tf.constant(UNIT_RANGE_TABLE), tf.cast(batch, tf.int32))[..., None]


@functools.lru_cache(maxsize=8)
def load(name, split="train", data_dir=None, cache_dir=None):
    """Loads a dataset split, verified against its checksums; cached per process."""
    images_path, labels_path = locate_files(name, split, data_dir, cache_dir)
    stems = SPLIT_FILES[split]
    sums = CHECKSUMS[name]
    images, labels = read_images_and_labels(images_path, labels_path, sums[stems[0]], sums[stems[1]])
    return Dataset(name, split, images, labels.astype(np.int32))


def sample_indices(num_examples, batch_size, rng):
    """batch_size indices uniform in [0, num_examples), with replacement, from a tf.random.Generator.

    The seed draws np.random.randint(0, N, batch_size) the same way; doing it with the training
    state's tf.random.Generator keeps it inside compiled code and in the checkpoint.
    """
    return rng.uniform([batch_size], minval=0, maxval=tf.cast(num_examples, tf.int64),
                       dtype=tf.int64)


def gather_batch(images, indices):
    """The float32 images at `indices` of a resident tensor of images or of uint8 pixels."""
    return batch_to_unit_range(tf.gather(images, indices))


def sample_batch(images, batch_size, rng):
    """Draws batch_size examples uniformly with replacement, in-graph, from a resident tensor of
    images or of uint8 pixels; returns float32 images."""
    return gather_batch(images, sample_indices(tf.shape(images, out_type=tf.int64)[0], batch_size,
                                               rng))
