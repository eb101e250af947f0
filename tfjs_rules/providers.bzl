"""Providers of tfjs_rules."""

TfjsModelInfo = provider(
    doc = "A converted TF.js model: what downstream web bundles and tests consume.",
    fields = {
        "model_dir": "File: the output directory (tree artifact) `<name>/` holding model.json " +
                     "and the weight shards `group<G>-shard<I>of<N>.bin`.",
        "model_json": "string: path of model.json inside model_dir (model_dir.path + " +
                      "'/model.json'); a path, not a File, since it lives inside a tree artifact.",
        "format": "string: the output format, 'tfjs_layers_model' or 'tfjs_graph_model'.",
        "summary": "File: `<name>.summary.json`, written with the model: source, format, " +
                   "num_weights, num_groups, quantized_weights ({dtype: count}), shard_count, " +
                   "weight_bytes, total_bytes, and each file's name, size, sha256 and " +
                   "integrity (the SRI string, `sha384-<base64>`, for `<link rel=preload " +
                   "integrity=...>` and fetch). Counts " +
                   "are known only once the conversion ran, hence a file.",
        "source": "Label: the src the model was converted from.",
        "source_file": "File: what identifies the source model in src: the .h5/.keras file, " +
                       "the model.json of a TF.js model, the saved_model.pb of a SavedModel " +
                       "(the converter reads its directory), the model_dir of a tfjs_model " +
                       "src, or src's one file or directory.",
    },
)

TfjsModelFileInfo = provider(
    doc = "A model converted to one file by tflite_model or onnx_model.",
    fields = {
        "file": "File: the output, `<name>.tflite` or `<name>.onnx`.",
        "external_data": "File or None: `<name>.onnx.data`, the weights of an onnx_model " +
                         "with external_data = True (beside `file`, which names it).",
        "format": "string: the output format, 'tflite' or 'onnx'.",
        "source": "Label: the src the model was converted from.",
        "source_file": "File: what identifies the source model in src (as TfjsModelInfo's " +
                       "source_file: the .h5/.keras file, a model.json, a saved_model.pb, the " +
                       "model_dir of a tfjs_model src, or src's one file or directory).",
    },
)
