"""Writes small Keras models for the rule tests: make_model.py OUT KIND.

KIND: mlp (Keras 3 .keras or .h5 by OUT's extension) or broken (not a model).
Seeded, so the bytes of an .h5 are the same on every run.
"""

import sys


def main(out: str, kind: str) -> None:
    if kind == "broken":
        with open(out, "wb") as f:
            f.write(b"this is not a model\n")
        return
    import keras
    keras.utils.set_random_seed(int(kind.rsplit("_", 1)[-1]) if "_" in kind else 0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)], name=kind)
    model.save(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
