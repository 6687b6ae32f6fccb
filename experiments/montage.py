r"""Puts PNG images side by side (same height) into one PNG, with a white gap between them.

    python experiments/montage.py --inputs=runs/a/samples/step_010000.png,runs/b/samples/step_010000.png \
        --output=docs/a_and_b.png
"""

import os
import sys

from absl import app, flags
import numpy as np
import tensorflow as tf

from gan import images

FLAGS = flags.FLAGS
flags.DEFINE_list("inputs", None, "PNG files to place left to right.")
flags.DEFINE_string("output", None, "PNG file to write.")
flags.DEFINE_integer("gap", 6, "White pixels between images.", lower_bound=0)
flags.mark_flags_as_required(["inputs", "output"])


def main(argv):
    del argv
    missing = [path for path in FLAGS.inputs if not os.path.isfile(path)]
    if missing:
        print(f"montage.py: error: --inputs: {missing[0]} not found", file=sys.stderr)
        sys.exit(2)
    pictures = [tf.io.decode_png(tf.io.read_file(path), channels=1).numpy()
                for path in FLAGS.inputs]
    if len({p.shape[0] for p in pictures}) != 1:
        print("montage.py: error: --inputs: the images differ in height", file=sys.stderr)
        sys.exit(2)
    gap = np.full((pictures[0].shape[0], FLAGS.gap, 1), 255, np.uint8)
    parts = [part for picture in pictures for part in (picture, gap)][:-1]
    images.write_png(FLAGS.output, np.concatenate(parts, axis=1))
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
