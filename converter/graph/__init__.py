"""Graph models: SavedModel / frozen graph / Keras -> TF.js graph model.

Readers (``saved_model``, ``frozen``, ``keras``) freeze a source into a
``GraphModel``; ``pipeline`` runs the graph transforms in order; the writer
(``converter.writers.tfjs_graph``) streams the constants into weight shards.
"""
