"""The ``make bench`` scripts refuse bad arguments at the command line, naming the option,
before any run."""

from __future__ import annotations

import pytest

from bench_scripts_support import BENCH, ran, script


#: (script, arguments, its first step after parsing, stubbed so a run that is not refused stops there)
BAD_COUNTS = [
    ("bench_cca", ["--repeats", "0"], "data"),
    ("bench_cca", ["--k", "-1"], "data"),
    ("bench_eval", ["--quick", "--repeats", "0"], "make_data"),
    ("bench_eval", ["--quick", "--big-repeats", "0"], "make_data"),
    ("bench_kernel_cca", ["--quick", "--repeats", "0"], "exact_vs_pyrcca"),
    ("bench_contrastive", ["--quick", "--repeats", "0"], "bench_loss"),
    ("bench_datasets", ["--quick", "--repeats", "0"], "bench_openclipart"),
    ("bench_towers", ["--quick", "--repeats", "0"], "gemm_gflops"),
    ("bench_index", ["--quick", "--nq", "0"], "bench_exact"),
]


@pytest.mark.parametrize("name, argv, first", BAD_COUNTS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_count_below_one_is_refused_naming_the_option(name, argv, first, monkeypatch, capsys):
    module = script(name)
    monkeypatch.setattr(module, first, ran)
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {argv[-2]}: expected an integer >= 1, got '{argv[-1]}'" in err


def test_positive_int_reads_counts_and_refuses_the_rest():
    util = script("_util")
    assert util.positive_int("1") == 1 and util.positive_int("20000") == 20000
    for bad in ("0", "-3", "2.5", "five", ""):
        with pytest.raises(Exception, match=f"expected an integer >= 1, got {bad!r}"):
            util.positive_int(bad)


@pytest.mark.parametrize("argv, option", [
    (["--hnsw-data", "gaussain"], "--hnsw-data: expected a comma-separated list of latent, gaussian, got 'gaussain'"),
    (["--hnsw-data", "latent,Gaussian"], "--hnsw-data: expected a comma-separated list of latent, gaussian, "
                                         "got 'latent,Gaussian'"),
    (["--ef", "16,abc"], "--ef: expected a comma-separated list of integers >= 1, got '16,abc'"),
    (["--ef", "0,16"], "--ef: expected a comma-separated list of integers >= 1, got '0,16'"),
])
def test_index_bench_refuses_an_unknown_data_kind_or_ef(argv, option, monkeypatch, capsys):
    module = script("bench_index")
    monkeypatch.setattr(module, "bench_hnsw", ran)
    with pytest.raises(SystemExit) as info:
        module.main(["--skip-exact", *argv])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(option)


@pytest.mark.parametrize("given", ["tourch,onnx", "", "onnx,onnx"])
def test_server_bench_refuses_unknown_runtimes_before_building(given, monkeypatch, capsys):
    module = script("bench_server")
    monkeypatch.setattr(module, "build_index", ran)
    with pytest.raises(SystemExit) as info:
        module.main(["--quick", "--runtimes", given])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "--runtimes: expected a comma-separated list of distinct runtimes among torch, onnx, torch-bf16, "
        f"got {given!r}")


@pytest.mark.parametrize("argv, most", [(["--d", "4", "--k", "10"], 4), (["--n", "6", "--d", "8", "--k", "7"], 5)])
def test_cca_bench_refuses_more_pairs_than_the_data_hold(argv, most, monkeypatch, capsys):
    module = script("bench_cca")
    monkeypatch.setattr(module, "data", ran)
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        f"--k: expected at most min(--d, --n - 1) = {most} canonical pairs, got {argv[-1]}")


def test_server_bench_refuses_a_missing_baseline_revision_before_building(monkeypatch):
    module = script("bench_server")
    monkeypatch.setattr(module, "build_index", ran)
    with pytest.raises(SystemExit) as info:
        module.main(["--quick", "--baseline", "no-such-revision"])
    assert str(info.value.code).startswith("--baseline: 'no-such-revision' is not a commit of this git checkout")


def test_a_failing_child_process_stops_the_run_with_its_own_error():
    """bench_scale and bench_memory run each case in a child process; a child's failure was a bare
    CalledProcessError, its traceback captured and dropped."""
    module = script("bench_scale")
    with pytest.raises(SystemExit) as info:
        module.run_child(BENCH / "bench_memory.py", "synthetic", n=10, d=4, spec="IVF64,PQ32", folder="unused")
    message = str(info.value.code)
    assert message.startswith("a benchmark child process failed (exit 1): ")
    assert "InputError" in message and "IVF64,PQ32" in message


def test_a_failing_training_child_names_the_setting():
    module = script("bench_contrastive")
    with pytest.raises(SystemExit) as info:
        module.bench_head_only(n=32, batch=16, dim=4, epochs=1, threads=1, precision="fp8")
    assert "precision" in str(info.value.code) and "'fp8'" in str(info.value.code)
