r"""The small CNN whose features and class probabilities the evaluation metrics use.

Train it (the weights of record were produced by exactly these commands):
    python -m gan.classifier --dataset=mnist
    python -m gan.classifier --dataset=fashion_mnist
Each writes gan/assets/classifier_<dataset>.npz (about 1.9 MB) and prints its test accuracy.
The weights ship with the package so that every user measures FID and friends with the same network,
offline.

Architecture (all from gan.layers):
  conv3x3(32) relu, conv3x3(32, stride 2) relu,      28 -> 14
  conv3x3(64) relu, conv3x3(64, stride 2) relu,      14 -> 7
  flatten, dense(128) relu  <- the 128-d "penultimate features"
  dropout(0.5) (training only), dense(10) logits
"""

import os
import time

from absl import flags
import numpy as np
import tensorflow as tf

from gan import cli, config, data, files, layers, optimizers

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
FEATURE_DIM = 128


def weights_path(dataset):
    return os.path.join(ASSETS_DIR, f"classifier_{dataset}.npz")


class Classifier(tf.Module):
    def __init__(self, num_classes=data.NUM_CLASSES, name="classifier"):
        super().__init__(name=name)
        with self.name_scope:
            self.convs = [layers.Conv2D(32, 3), layers.Conv2D(32, 3, stride=2),
                          layers.Conv2D(64, 3), layers.Conv2D(64, 3, stride=2)]
            self.flatten = layers.Flatten()
            self.hidden = layers.Dense(FEATURE_DIM)
            self.dropout = layers.Dropout(0.5)
            self.output_layer = layers.Dense(num_classes)
        self(tf.zeros([1] + list(data.IMAGE_SHAPE)))  # create the variables now
        # Traced once per classifier, for any batch size, so repeated evaluations do not retrace.
        # Not XLA: TensorFlow's own (oneDNN) convolutions compute the features faster on CPU,
        # and the metrics differ between the two by float rounding only (docs/performance.md).
        self.compiled_features_and_logits = tf.function(
            lambda images: self.features_and_logits(images), autograph=False,
            input_signature=[tf.TensorSpec([None, *data.IMAGE_SHAPE], tf.float32)])

    def features_and_logits(self, images, training=False, dropout_seed=None):
        """images in [-1, 1], [B, 28, 28, 1] -> (128-d features, class logits)."""
        h = images
        for conv in self.convs:
            h = tf.nn.relu(conv(h))
        features = tf.nn.relu(self.hidden(self.flatten(h)))
        logits = self.output_layer(self.dropout(features, training, dropout_seed))
        return features, logits

    def __call__(self, images):
        return self.features_and_logits(images)[1]

    def _keys(self):
        # Variable names repeat across layers (eager name scopes are not uniquified): number them.
        return [f"{i:03d}_{v.name}" for i, v in enumerate(self.variables)]

    def save(self, path):
        """Writes the weights as .npz, through a temporary file so a crash leaves no half file."""
        partial = path + ".tmp.npz"
        np.savez(partial, **{k: v.numpy() for k, v in zip(self._keys(), self.variables)})
        os.replace(partial, path)

    def load(self, path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: classifier weights not found; train them with "
                                    "`python -m gan.classifier --dataset=...`")
        with np.load(path) as stored:
            keys = self._keys()
            missing = [k for k in keys if k not in stored]
            if missing:
                raise ValueError(f"{path}: weights for {missing} are missing")
            for key, v in zip(keys, self.variables):
                if stored[key].shape != tuple(v.shape):
                    raise ValueError(f"{path}: {key} has shape {stored[key].shape}, "
                                     f"expected {tuple(v.shape)}")
                v.assign(stored[key])
        return self


def load_classifier(dataset):
    """The shipped, trained classifier for a dataset."""
    return Classifier().load(weights_path(dataset))


def predict(classifier, images, batch_size=250):
    """(features [N, 128], class probabilities [N, 10]) as float64 numpy arrays, in batches.
    The batches are small for memory's sake: the first convolution's output of 1,000 images is
    100 MB, and smaller batches lower an evaluation's peak at the same speed."""
    features, probs = [], []
    for start in range(0, len(images), batch_size):
        f, logits = classifier.compiled_features_and_logits(
            tf.constant(images[start:start + batch_size]))
        features.append(f.numpy())
        probs.append(tf.nn.softmax(logits).numpy())
    return np.concatenate(features).astype(np.float64), np.concatenate(probs).astype(np.float64)


def accuracy(classifier, dataset):
    _, probs = predict(classifier, dataset.images)
    return float(np.mean(np.argmax(probs, axis=1) == dataset.labels))


def train_classifier(dataset_name, epochs, batch_size=128, learning_rate=1e-3, seed=0,
                     data_dir=None, log=print):
    """Trains with the project's own Adam, learning rate halved every `epochs // 3` epochs."""
    tf.random.set_seed(seed)
    train = data.load(dataset_name, "train", data_dir)
    test = data.load(dataset_name, "test", data_dir)
    classifier = Classifier()
    optimizer = optimizers.Adam(learning_rate, beta1=0.9, beta2=0.999)
    optimizer.build(classifier.trainable_variables)
    rng = tf.random.Generator.from_seed(seed)
    images, labels = tf.constant(train.images), tf.constant(train.labels)
    steps_per_epoch = train.num_examples // batch_size

    # Not XLA: XLA's CPU convolutions inside a while loop are many times slower than TensorFlow's.
    @tf.function
    def train_epoch():
        # A fresh permutation per epoch, cut into [steps, batch] so each batch has a static shape.
        order = tf.argsort(rng.uniform([train.num_examples]))[:steps_per_epoch * batch_size]
        batches = tf.reshape(order, [steps_per_epoch, batch_size])
        total = tf.constant(0.0)
        for i in tf.range(steps_per_epoch):
            idx = batches[i]
            x, y = tf.gather(images, idx), tf.gather(labels, idx)
            # Light augmentation: random shifts of up to 2 pixels, by padding and cropping.
            x = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], constant_values=-1.0)
            offsets = rng.uniform([2], 0, 5, dtype=tf.int32)
            x = tf.slice(x, [0, offsets[0], offsets[1], 0], [batch_size, 28, 28, 1])
            with tf.GradientTape() as tape:
                _, logits = classifier.features_and_logits(
                    x, training=True, dropout_seed=rng.uniform_full_int([2], tf.int32))
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            grads = tape.gradient(loss, classifier.trainable_variables)
            optimizer.apply(grads, classifier.trainable_variables)
            total += loss
        return total / tf.cast(steps_per_epoch, tf.float32)

    decay_every = max(epochs // 3, 1)
    for epoch in range(1, epochs + 1):
        start = time.time()
        loss = float(train_epoch())
        log(f"epoch {epoch}/{epochs}  loss {loss:.4f}  lr {float(optimizer.learning_rate):.2e}  "
            f"test accuracy {accuracy(classifier, test):.4f}  ({time.time() - start:.0f}s)")
        if epoch % decay_every == 0:
            optimizer.learning_rate.assign(optimizer.learning_rate * 0.5)
    return classifier, accuracy(classifier, test)


FLAGS = flags.FLAGS


def main(argv):
    del argv
    error = FLAGS.output and files.check_output_path(FLAGS.output, (".npz",))
    if error:
        cli.fail("gan.classifier", [error])
    classifier, test_accuracy = train_classifier(FLAGS.dataset, FLAGS.epochs, seed=FLAGS.seed,
                                                 data_dir=FLAGS.data_dir)
    output = FLAGS.output or weights_path(FLAGS.dataset)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    classifier.save(output)
    print(f"{FLAGS.dataset} test accuracy {test_accuracy:.4f}; weights written to {output}")


def define_flags():
    flags.DEFINE_enum("dataset", "mnist", list(data.DATASETS), "Dataset to train on.")
    flags.DEFINE_string("data_dir", None, "Directory with the dataset's IDX files (see gan.train).")
    flags.DEFINE_integer("epochs", 12, "Training epochs.", lower_bound=1, upper_bound=10000)
    flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0, upper_bound=config.SEED.high)
    flags.DEFINE_string("output", None, "Where to write the weights (.npz); default: the "
                        "package's own gan/assets/classifier_<dataset>.npz.")


if __name__ == "__main__":
    define_flags()
    cli.run(main, "gan.classifier")
