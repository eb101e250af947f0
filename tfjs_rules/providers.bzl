"""Providers of tfjs_rules."""

TfjsModelInfo = provider(
    doc = "A converted TF.js model: what downstream web bundles and tests consume.",
    fields = {
        "model_dir": "File: the output directory (tree artifact) holding model.json and the " +
                     "weight shards.",
        "model_json": "string: path of model.json inside model_dir (model_dir.path + '/model.json').",
        "format": "string: 'tfjs_layers_model' or 'tfjs_graph_model'.",
        "summary": "File: JSON written with the model: format, shard_count, total_bytes (all " +
                   "files), weight_bytes, num_weights, and each file's size and sha256. Counts " +
                   "are known only once the conversion ran, hence a file.",
        "source": "Label: the src the model was converted from.",
        "source_file": "File: the source model file or directory.",
    },
)
