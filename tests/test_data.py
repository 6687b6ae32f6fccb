import gzip
import os

import numpy as np
import pytest
import tensorflow as tf

from gan import data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_is_bundled_and_correct():
    train = data.load("mnist", "train")
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.float32
    assert train.labels.shape == (60000,) and train.labels.dtype == np.int32
    assert train.images.min() == -1.0 and train.images.max() == 1.0
    np.testing.assert_array_equal(np.bincount(train.labels), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(train.labels[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    # MNIST's well-known pixel statistics on [0, 1]: mean 0.1307, std 0.3081.
    unit = (train.images + 1) / 2
    assert abs(unit.mean() - 0.1307) < 1e-3 and abs(unit.std() - 0.3081) < 1e-3
    test = data.load("mnist", "test")
    np.testing.assert_array_equal(np.bincount(test.labels), MNIST_TEST_COUNTS)


def test_images_are_scaled_as_the_seed_does():
    raw = data.read_idx(os.path.join(data.PACKAGE_DATA_DIR, "mnist", "t10k-images-idx3-ubyte.gz"))
    np.testing.assert_allclose(data.load("mnist", "test").images[..., 0], raw / 127.5 - 1.0, atol=1e-6)


@pytest.mark.skipif(not os.path.isdir(data.DEBIAN_FASHION_DIR),
                    reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")
def test_fashion_mnist_from_debian_package():
    train = data.load("fashion_mnist", "train")
    assert train.images.shape == (60000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(train.labels), [6000] * 10)
    test = data.load("fashion_mnist", "test")
    np.testing.assert_array_equal(np.bincount(test.labels), [1000] * 10)
    assert not np.array_equal(test.images[:100], data.load("mnist", "test").images[:100])


def write_idx(path, array, magic=None, compress=True):
    array = np.asarray(array, np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    payload = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload += array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)
    return str(path)


def test_idx_round_trip_raw_and_gz(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28))
    for compress in (True, False):
        path = write_idx(tmp_path / f"x{compress}", images, compress=compress)
        np.testing.assert_array_equal(data.read_idx(path, data.IMAGES_MAGIC), images)


def test_truncated_file_names_the_file(tmp_path):
    path = write_idx(tmp_path / "images.gz", np.zeros((4, 28, 28)))
    with gzip.open(path) as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(data.DataError, match=rf"{path}: truncated"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_truncated_gzip_stream_names_the_file(tmp_path):
    path = write_idx(tmp_path / "images.gz", np.zeros((40, 28, 28)))
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match=rf"{path}: cannot be read as gzip"):
        data.read_idx(path)


def test_wrong_magic_names_the_file_and_both_numbers(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(5))  # a labels file (2049)
    with pytest.raises(data.DataError, match=rf"{path}: wrong magic number 2049.*expected 2051"):
        data.read_idx(path, data.IMAGES_MAGIC)


def test_image_and_label_count_mismatch(tmp_path):
    images = write_idx(tmp_path / "i.gz", np.zeros((5, 28, 28)))
    labels = write_idx(tmp_path / "l.gz", np.zeros(4))
    with pytest.raises(data.DataError, match=r"has 5 images but .*l.gz has 4 labels"):
        data.read_images_and_labels(images, labels)


def test_checksum_mismatch_names_the_file(tmp_path):
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(10000))
    with pytest.raises(data.DataError, match=rf"{path}: checksum mismatch"):
        data.read_idx(path, data.LABELS_MAGIC, data.CHECKSUMS["mnist"]["t10k-labels-idx1-ubyte"])


def test_missing_file(tmp_path):
    with pytest.raises(data.DataError, match="file not found"):
        data.read_idx(str(tmp_path / "nope.gz"))


def test_corrupted_copy_in_data_dir_is_rejected(tmp_path):
    """A data_dir holding a tampered MNIST file fails its checksum instead of training on it."""
    src = os.path.join(data.PACKAGE_DATA_DIR, "mnist")
    for name in os.listdir(src):
        with open(os.path.join(src, name), "rb") as f, open(tmp_path / name, "wb") as out:
            out.write(f.read())
    labels = data.read_idx(str(tmp_path / "t10k-labels-idx1-ubyte.gz")).copy()
    labels[0] = (labels[0] + 1) % 10
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        data.load("mnist", "test", data_dir=str(tmp_path))


def test_fashion_not_found_lists_every_place_tried(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", str(tmp_path / "debian"))
    monkeypatch.setattr(data, "FASHION_MIRROR", "http://127.0.0.1:9/")  # nothing listens: fails fast
    (tmp_path / "mine").mkdir()
    with pytest.raises(data.DataError) as error:
        data.locate_files("fashion_mnist", "train", data_dir=str(tmp_path / "mine"),
                          cache_dir=str(tmp_path / "cache"))
    message = str(error.value)
    for place in ("mine", "debian", "cache", "download from http://127.0.0.1:9/",
                  "apt-get install dataset-fashion-mnist", "--data_dir"):
        assert place in message
    assert not os.listdir(tmp_path / "cache" / "fashion_mnist")  # no half-downloaded file left


def test_unknown_dataset_lists_choices():
    with pytest.raises(data.DataError, match="valid choices: fashion_mnist, mnist"):
        data.load("cifar10")


def test_sample_batch_draws_rows_of_the_dataset_in_compiled_code():
    images = tf.reshape(tf.range(50, dtype=tf.float32), [50, 1, 1, 1])
    rng = tf.random.Generator.from_seed(0)
    draw = tf.function(lambda: data.sample_batch(images, 4000, rng), jit_compile=True)
    values = draw().numpy().ravel()
    assert values.shape == (4000,)
    counts = np.bincount(values.astype(int), minlength=50)
    assert counts.min() > 40 and counts.max() < 130  # uniform: 80 expected each
    assert not np.array_equal(values, draw().numpy().ravel())  # the RNG state advances


def test_pixels_are_kept_and_every_value_converts_as_the_images_do():
    test = data.load("mnist", "test")
    assert test.pixels.dtype == np.uint8 and test.pixels.shape == (10000, 28, 28)
    np.testing.assert_array_equal(
        data.UNIT_RANGE_TABLE, np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1))
    batch = data.batch_to_unit_range(tf.constant(test.pixels[:300]))
    assert batch.dtype == tf.float32 and batch.shape == (300, 28, 28, 1)
    np.testing.assert_array_equal(batch.numpy(), test.images[:300])
