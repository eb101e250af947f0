"""tfjs_model outputs are byte-identical across checkouts at different paths and clean builds.

Every file of every fixture conversion (the model directory's model.json and
shards, and the summary) is compared by sha256. The fixtures cover plain,
sharded, quantized (uint8, uint16, float16) and split-by-layer conversions, from
.h5 and .keras sources.
"""

import json

import pytest

import bazel_harness as bh

# slow: two cold checkouts (server start, Keras source generation, conversions)
# plus a clean rebuild take about a minute on 2 cores.
pytestmark = [pytest.mark.bazel, pytest.mark.slow]


@pytest.fixture(scope="module")
def first_builds(checkouts):
    """{checkout name: output digests} of a cold build in checkouts a and b."""
    digests = {}
    for name in ("a", "b"):
        bazel = checkouts[name]
        run = bazel.build(bh.labels(bh.MODELS))
        print("checkout %s: %s (%.1f s)" % (name, run.processes_line, run.seconds))
        counts = run.processes
        # Cold: the sources and every conversion ran here (nothing came from a cache).
        assert counts["remote cache hit"] == 0, run.output
        assert counts["worker"] == len(bh.MODELS), counts
        assert bh.executed(counts) == len(bh.MODELS) + bh.SOURCE_ACTIONS, counts
        digests[name] = bazel.output_digests(bh.MODELS)
    return digests


def _summaries(bazel):
    return {name: json.loads((bazel.bin_dir / bh.PACKAGE / (name + ".summary.json")).read_text())
            for name in bh.MODELS}


def test_fixtures_are_the_variants_they_claim(checkouts, first_builds):
    s = _summaries(checkouts["a"])
    assert s["wide_1_sharded_tfjs"]["shard_count"] > 1
    for name, dtype in [("conv_2_uint8_tfjs", "uint8"), ("bn_3_float16_tfjs", "float16")]:
        assert s[name]["quantized_weights"] == {dtype: s[name]["num_weights"]}, name
    uint16 = s["mlp_5_uint16_tfjs"]["quantized_weights"]["uint16"]
    assert 0 < uint16 < s["mlp_5_uint16_tfjs"]["num_weights"]  # kernels only
    assert s["embed_4_split_tfjs"]["num_groups"] > 1
    split_sharded = s["wide_6_split_sharded_tfjs"]
    assert 1 < split_sharded["num_groups"] < split_sharded["shard_count"]
    for name, summary in s.items():
        assert summary["format"] == "layers-model", name
        assert summary["source"] == bh.label(bh.MODELS[name]), name


def test_two_checkouts_at_different_paths_build_identical_bytes(checkouts, first_builds):
    a, b = first_builds["a"], first_builds["b"]
    assert checkouts["a"].checkout != checkouts["b"].checkout
    assert checkouts["a"].output_base != checkouts["b"].output_base
    assert len(a) >= 3 * len(bh.MODELS)  # model.json + >= 1 shard + summary each
    assert sorted(a) == sorted(b)
    differing = sorted(path for path in a if a[path] != b[path])
    assert differing == [], "outputs differ between checkouts: %s" % differing
    # Each checkout generated its own sources. HDF5 files come out identical;
    # .keras archives carry a save date, so they usually differ, and the
    # conversions must not care.
    sources = sorted(set(bh.MODELS.values()))
    digests = {n: {src: bh.sha256_file(checkouts[n].bin_dir / bh.PACKAGE / src) for src in sources}
               for n in ("a", "b")}
    differ = [src for src in sources if digests["a"][src] != digests["b"][src]]
    print("sources that differ between the checkouts: %s" % differ)
    assert [src for src in differ if src.endswith(".h5")] == []


def test_two_clean_builds_in_one_checkout_are_identical(checkouts, first_builds):
    bazel = checkouts["a"]
    bazel.clean()
    run = bazel.build(bh.labels(bh.MODELS))
    # Really rebuilt: the sources and every conversion ran again.
    assert bh.executed(run.processes) == len(bh.MODELS) + bh.SOURCE_ACTIONS, run.output
    again = bazel.output_digests(bh.MODELS)
    first = first_builds["a"]
    assert sorted(again) == sorted(first)
    assert sorted(p for p in first if first[p] != again[p]) == []
