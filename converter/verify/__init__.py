"""Conversion-time verification: run the output in real TensorFlow.js against TensorFlow.

``runtime`` runs TF.js models in Node (cpu and wasm) with a hermetic Node and
pinned npm packages; ``check`` compares its outputs with the source model's.
"""
