"""Writes a small seeded Keras model to the path given: make_model.py OUT.h5."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402  (after the log level)


def main(out: str) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(4, name="logits"),
    ])
    model.save(out)


if __name__ == "__main__":
    main(sys.argv[1])
