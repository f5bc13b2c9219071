"""Bad input, round two, at the command line and in config files: each case is refused with a
one-line message naming the flag, key or file (and line) and what is accepted, exit code 2, no
traceback, before any compute, and nothing written."""

import json
import socket
import sys
import time

import pytest
import ray
from test_bad_input import never_trains, tiny_pt  # noqa: F401  (a fixture)

from l2l_taskmix import cluster
from l2l_taskmix.benchmark import runner, sweep
from l2l_taskmix.benchmark.config import BenchmarkConfig, load_config_file
from l2l_taskmix.benchmark.workers import make_executor
from l2l_taskmix.cli import build_parser, main
from l2l_taskmix.validation import check_scalar, short_repr

pytestmark = pytest.mark.usefixtures("one_thread")


def no_compute(monkeypatch):
    """Loading (featurizing) the data or training fails the test."""
    never_trains(monkeypatch)

    def fail(*args, **kwargs):
        raise AssertionError("data were loaded before the input was checked")

    monkeypatch.setattr(runner, "load_data", fail)
    monkeypatch.setattr(sweep, "load_data", fail)


def refused(capsys, argv, message):
    """``main(argv)`` exits 2 with ``message`` on one line of stderr and no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


# -- 1. an empty --out, --config or path setting -----------------------------------------------------


@pytest.mark.parametrize("command", [["benchmark"], ["sweep", "--over", "eta"]])
@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_refused_not_runs_dataset(tiny_pt, tmp_path, capsys, monkeypatch, command, out):
    no_compute(monkeypatch)
    monkeypatch.chdir(tmp_path)
    refused(capsys, [*command, "--dataset", str(tiny_pt), "--out", out, "--no-progress"], f"--out == {out!r}: give an output folder")
    assert list(tmp_path.iterdir()) == []  # once: ./runs/tiny, with only a "Wrote" line to show it


def test_an_empty_config_flag_is_refused_not_ignored(tiny_pt, tmp_path, capsys, monkeypatch):
    no_compute(monkeypatch)
    refused(
        capsys,
        ["benchmark", "--dataset", str(tiny_pt), "--config", " ", "--out", str(tmp_path / "out")],
        "--config == ' ': give a YAML or JSON file",
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["cache_dir", "data_root", "encoder", "dataset", "device"])
def test_an_empty_path_setting_in_a_config_file_is_refused(tmp_path, capsys, monkeypatch, key):
    no_compute(monkeypatch)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({key: "  "}))
    refused(
        capsys,
        ["benchmark", "--config", str(path), "--out", str(tmp_path / "out")],
        f"config file {path}: {key} == '  ', must not be empty; leave it out for the default",
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=f"{key} == '', must not be empty"):  # flags too
        BenchmarkConfig(**{key: ""})


# -- 2. a key given twice -----------------------------------------------------------------------------

DUPLICATES = [
    ("twice.yaml", "iterations: 5\neta: 1.0\niterations: 7\n", "line 3: key 'iterations' is given twice (first on line 1)"),
    ("nested.yml", "eta: 1.0\nfirst_order:\n  a: 1\n  a: 2\n", "line 4: key 'a' is given twice (first on line 3)"),
    ("twice.json", '{"iterations": 5,\n "eta": 1.0,\n "iterations": 7}', "line 3: key 'iterations' is given twice"),
]


@pytest.mark.parametrize("name, text, message", DUPLICATES, ids=[d[0] for d in DUPLICATES])
def test_a_key_given_twice_names_the_file_key_and_line(tmp_path, capsys, monkeypatch, name, text, message):
    no_compute(monkeypatch)
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="given twice"):  # once: silently the last, iterations 7
        load_config_file(path)
    refused(
        capsys, ["benchmark", "--config", str(path), "--out", str(tmp_path / "out")], f"config file {path}, {message}; give each key once"
    )
    assert not (tmp_path / "out").exists()


def test_a_setting_given_under_two_spellings_is_refused(tmp_path, capsys, monkeypatch):
    no_compute(monkeypatch)
    path = tmp_path / "c.yaml"
    path.write_text("inner-lr: 0.5\ninner_lr: 0.01\n")
    refused(
        capsys,
        ["benchmark", "--config", str(path), "--out", str(tmp_path / "out")],
        f"config file {path}: configuration keys 'inner-lr' and 'inner_lr' both set inner_lr; give it once",
    )
    with pytest.raises(ValueError, match="'meta_batch' and 'meta_batch_size' both set meta_batch_size"), pytest.warns(DeprecationWarning):
        BenchmarkConfig.from_sources({"meta_batch": 4, "meta_batch_size": 8})


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &base {iterations: 5, eta: 1.0}\nsettings:\n  <<: *base\n  eta: 2.0\n")
    assert load_config_file(path)["settings"] == {"iterations": 5, "eta": 2.0}


def test_yaml_tags_still_run_no_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("eta: !!python/object/apply:os.system ['echo pwned > " + str(tmp_path / "pwned") + "']\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        load_config_file(path)
    assert not (tmp_path / "pwned").exists()


# -- 3. a config file that is not UTF-8 ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["latin1.yaml", "latin1.json"])
def test_a_config_file_that_is_not_utf8_is_named(tmp_path, capsys, monkeypatch, name):
    no_compute(monkeypatch)
    path = tmp_path / name
    text = "eta: 1.0\nencoder: café\n" if name.endswith("yaml") else '{"eta": 1.0,\n "encoder": "café"}'
    path.write_bytes(text.encode("latin-1"))
    err = refused(
        capsys, ["benchmark", "--config", str(path), "--out", str(tmp_path / "out")], f"config file {path} is not UTF-8 text (line 2, byte "
    )
    assert "save it as UTF-8" in err and not (tmp_path / "out").exists()


def test_a_utf8_config_file_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"eta": 2.0}).encode())
    assert load_config_file(path) == {"eta": 2.0}


# -- 4. sweep values, before any compute --------------------------------------------------------------


@pytest.mark.parametrize(
    "values, message",
    [
        ("0,T/0", "--values: 'T/0' divides by zero; num_synthetic takes whole numbers and multiples of T"),
        ("T/0.0", "--values: 'T/0.0' divides by zero"),
        ("9" * 400 + "T", "is too large a value of num_synthetic"),
        ("1000000T", "--values: num_synthetic == 1000000, must be <= 100000"),
        ("T/", "--values: cannot read 'T/' as a value of num_synthetic"),
    ],
)
def test_bad_sweep_values_fail_before_featurization(tiny_pt, tmp_path, capsys, monkeypatch, values, message):
    no_compute(monkeypatch)  # once: ZeroDivisionError after featurization
    refused(
        capsys,
        [
            "sweep",
            "--over",
            "num_synthetic",
            "--values",
            values,
            "--dataset",
            str(tiny_pt),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        message,
    )
    assert not (tmp_path / "out").exists()


def test_sweep_values_check_against_the_users_settings(tiny_pt, tmp_path, capsys, monkeypatch):
    no_compute(monkeypatch)
    refused(
        capsys,
        [
            "sweep",
            "--over",
            "num_synthetic",
            "--values",
            "0,5000T",
            "--batch-size",
            "1000",
            "--dataset",
            str(tiny_pt),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ],
        "--values: batch_size == 1000 with num_synthetic == 5000",
    )
    with pytest.raises(ValueError, match="divides by zero"):
        sweep.sweep_values("num_synthetic", "T/0", real_tasks=7, num_train=7)
    assert sweep.sweep_values("num_synthetic", "0,T/2,T,2T,4T", real_tasks=7, num_train=7) == [0, 3, 7, 14, 28]  # unchanged


# -- 5. sizes that cannot fit, counts that overflow ---------------------------------------------------

SIZES = [
    (["--num-synthetic", "1000000000000"], "num_synthetic == 1000000000000, must be <= 100000"),
    (["--hidden", "10000000"], "hidden == [10000000]: 10,240,000,000 weights after 1024-d features, must be at most 536,870,912"),
    (["--hidden", "16384,16384,16384"], "must be at most 536,870,912 (2 GiB of float32); give fewer or narrower layers"),
    (["--batch-size", "100000000"], "batch_size == 100000000, must be <= 1000000"),
    (
        ["--batch-size", "500000", "--num-synthetic", "100"],
        "batch_size == 500000 with num_synthetic == 100: 101,000,000 rows per meta-iteration at least, about 578 GiB",
    ),
    (["--iterations", str(10**23)], f"iterations == {10**23}, must be <= 10000000"),
    (["--finetune-steps", str(10**23)], "finetune_steps == 100000000000000000000000, must be <= 1000000"),
    (["--seeds", str(10**9)], "seeds == 1000000000, must be <= 10000"),
    (["--threads", str(10**23)], f"--threads == {10**23}, must be <= 1024"),  # once: Overflow when unpacking long long
    (["--workers", str(10**23)], f"--workers == {10**23}, must be <= 10000"),  # once: OverflowError, a traceback
    (["--shots", str(10**9)], "shots == 1000000000, must be <= 100000"),
    (["--num-train", str(10**9)], "num_train == 1000000000, must be <= 100000"),
    (["--train-subset", str(10**9)], "train_subset == 1000000000, must be <= 100000"),
    (["--val-tasks", str(10**9)], "val_tasks == 1000000000, must be <= 100000"),
    (["--meta-batch-size", str(10**9)], "meta_batch_size == 1000000000, must be <= 100000"),
]


@pytest.mark.parametrize("flags, message", SIZES, ids=[" ".join(f)[:30] for f, _ in SIZES])
def test_sizes_that_cannot_fit_are_refused_naming_the_setting_and_limit(tiny_pt, tmp_path, capsys, monkeypatch, flags, message):
    no_compute(monkeypatch)  # once: an allocator error or OverflowError, after featurization
    refused(capsys, ["benchmark", "--dataset", str(tiny_pt), *flags, "--out", str(tmp_path / "out"), "--no-progress"], message)
    assert not (tmp_path / "out").exists()


def test_a_huge_count_in_a_yaml_file_is_refused(tmp_path, capsys, monkeypatch):
    no_compute(monkeypatch)
    path = tmp_path / "c.yaml"
    path.write_text(f"iterations: {10**23}\n")
    refused(
        capsys,
        ["benchmark", "--config", str(path), "--out", str(tmp_path / "out")],
        f"config file {path}: iterations == {10**23}, must be <= 10000000",
    )


def test_the_bounds_refuse_no_real_use_and_are_in_the_help():
    BenchmarkConfig()  # the defaults, the paper's settings and a generous large run pass
    BenchmarkConfig(hidden=(16384, 16384), iterations=1_000_000, seeds=100, finetune_steps=10_000, inner_steps=100)
    BenchmarkConfig(hidden=(1024, 1024), batch_size=4096, num_synthetic=128)
    BenchmarkConfig(hidden=(256, 256), batch_size=1_000_000, num_synthetic=0)
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0].choices["benchmark"]._actions}
    assert "(at most 10,000,000)" in helps["iterations"] and "(at most 100,000)" in helps["num_synthetic"]
    assert "at most 2**29 weights" in helps["hidden"] and "(at most 1,000,000)" in helps["batch_size"]
    assert "(at most 1,024)" in helps["threads"] and "(at most 10,000)" in helps["workers"]
    with pytest.raises(ValueError, match="workers == 100000, must be <= 10000"):  # the library's boundary too
        make_executor(None, workers=100_000, threads=1)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--head-width", str(10**8)], "--head-width == 100,000,000: a head of 100,000,000 x 256 weights takes 102.4 GB of float32"),
        (["--head-width", str(10**6)], "must be at most 100,000 outputs"),
        (["--head-width", "40000", "--hidden", "16384"], "must be at most 32,768 outputs (536,870,912 weights, 2 GiB, after a 16384-wide"),
        (["--seed", str(10**26)], f"--seed == {10**26}, must be <= 2147483647"),  # once: Overflow when unpacking long long
    ],
)
def test_train_sizes_are_refused_naming_the_memory(tiny_pt, tmp_path, capsys, monkeypatch, flags, message):
    """``train --head-width 100000000`` once gave torch's allocator traceback."""
    no_compute(monkeypatch)
    refused(capsys, ["train", "--dataset", str(tiny_pt), *flags, "--out", str(tmp_path / "out"), "--no-progress"], message)
    assert not (tmp_path / "out").exists()
    helps = {a.dest: a.help for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions}
    assert "(at most 100,000, and 2**29 weights" in helps["head_width"] and "at most 2,147,483,647" in helps["seed"]


def test_the_python_api_checks_the_head_width_with_the_real_feature_width(tiny_pt):
    from l2l_taskmix.benchmark.config import check_head_width

    assert check_head_width(None, (256,)) is None and check_head_width(100_000, (256, 256)) == 100_000
    with pytest.raises(ValueError, match="a head of 100,000 x 8192 weights .* at most 65,536 outputs"):
        check_head_width(100_000, (), in_features=8192)


@pytest.mark.parametrize(
    "run",
    [runner.run_benchmark, lambda config, out, **kw: sweep.run_sweep(config, "eta", out, values="1,2", **kw)],
    ids=["run_benchmark", "run_sweep"],
)
@pytest.mark.parametrize("kwargs, message", [({"workers": 10**23}, "workers == 1"), ({"threads": 0}, "threads == 0, must be >= 1")])
def test_the_python_api_checks_workers_and_threads_before_loading_data(tmp_path, monkeypatch, run, kwargs, message):
    no_compute(monkeypatch)  # once: refused by make_executor, after featurization
    with pytest.raises(ValueError, match=message):
        run(BenchmarkConfig(protocols=("paper",)), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_an_int_too_long_to_print_is_still_a_short_message():
    with pytest.raises(ValueError, match=r"iterations == <an int of 16610 bits>, must be <= 10"):
        check_scalar(10**5000, "iterations", int, max_val=10)
    assert len(short_repr(10**100)) < 50


# -- 6. a hostile value is quoted short ---------------------------------------------------------------


def nested_yaml(key, levels=9, width=10):
    """``key``'s value: ``levels`` lists nested through aliases, width**levels leaves when expanded."""
    lines = [f"{key}:", "  - &l0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"  - &l{k} [" + ", ".join([f"*l{k - 1}"] * width) + "]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "key, message",
    [
        ("first_order", "first_order must be a bool or one of the texts true/false/yes/no/1/0, not list [["),
        ("standardize", "standardize must be a bool"),
        ("hidden", "hidden[0] must be an instance of int, not list"),
        ("engine", "engine must be an instance of str, not list"),
    ],
)
def test_a_nine_level_nested_value_gives_a_short_message_fast(tmp_path, capsys, monkeypatch, key, message):
    no_compute(monkeypatch)
    path = tmp_path / "nested.yaml"
    path.write_text(nested_yaml(key))
    start = time.perf_counter()
    err = refused(capsys, ["benchmark", "--config", str(path), "--out", str(tmp_path / "out")], message)
    assert time.perf_counter() - start < 10 and len(err) < 1000  # once: 4.3 MB at 6 levels, MemoryError at 9


def test_messages_of_the_config_quote_long_values_short(tmp_path):
    with pytest.raises(ValueError) as info:
        BenchmarkConfig.from_sources({"hidden": "x" * 10**6})
    assert len(str(info.value)) < 200
    with pytest.raises(ValueError) as info:
        BenchmarkConfig.from_sources({("k" * 10**5) + str(i): 1 for i in range(1000)})
    assert str(info.value).startswith("unknown configuration keys [") and len(str(info.value)) < 2000
    with pytest.raises(ValueError) as info:
        BenchmarkConfig(protocols=("paper",) * 10**5)
    assert len(str(info.value)) < 200
    with pytest.raises(ValueError) as info:
        cluster.check_address("", "--ray-address")
    assert "--ray-address == ''" in str(info.value)


# -- 7-9. Ray addresses -------------------------------------------------------------------------------


@pytest.fixture
def closed_port():
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_ray_address_fails_in_seconds_naming_it(tmp_path, capsys, monkeypatch, closed_port):
    no_compute(monkeypatch)
    address = f"127.0.0.1:{closed_port}"
    start = time.perf_counter()
    refused(
        capsys,
        ["benchmark", "--ray-address", address, "--out", str(tmp_path / "out")],  # once: retried forever
        f"--ray-address {address}: no Ray cluster answers at {address} (Connection refused); start one there with 'ray start --head'",
    )
    with pytest.raises(ConnectionError, match=f"--ray-address ray://{address}: no Ray cluster answers at {address}"):
        cluster.connect(f"ray://{address}")
    assert time.perf_counter() - start < 15
    assert not (tmp_path / "out").exists() and not ray.is_initialized()


def test_a_ray_address_that_never_answers_times_out(monkeypatch):
    def silent(address, timeout):
        assert timeout == cluster.CONNECT_TIMEOUT_S
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(ConnectionError, match=r"--ray-address head:6379: no Ray cluster answers at head:6379 \(no answer within 10 s\)"):
        cluster.check_cluster("head:6379")
    with pytest.raises(ConnectionError, match=r"--ray-address ray://\[::1\]:10001: no Ray cluster answers at \[::1\]:10001"):
        cluster.check_cluster("ray://[::1]:10001")
    with pytest.raises(ValueError, match="--ray-address == 'head:port': the port must be a number"):
        cluster.check_cluster("head:port")
    with pytest.raises(ValueError, match=r"--ray-address == '\[::1:6379': Invalid IPv6 URL; give host:port"):
        cluster.check_cluster("[::1:6379")
    for address in ("local", "auto", "head", "anyscale://cluster"):  # left to Ray
        cluster.check_cluster(address)


def test_ray_address_auto_without_a_cluster_speaks_of_our_flag(tmp_path, capsys, monkeypatch):
    def no_cluster(address=None, **kwargs):  # what ray.init("auto") raises with no instance running
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by setting `--address` "
            "flag or `RAY_ADDRESS` environment variable."
        )

    no_compute(monkeypatch)
    monkeypatch.setattr(ray, "init", no_cluster)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    err = refused(
        capsys,
        ["benchmark", "--ray-address", "auto", "--out", str(tmp_path / "out")],
        "--ray-address auto: no running Ray instance found on this machine",
    )
    assert "`--address`" not in err and "--ray for a new local instance" in err


def test_a_ray_client_address_without_ray_client_says_what_to_install(tmp_path, capsys, monkeypatch, closed_port):
    no_compute(monkeypatch)
    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc fails, as without ray[client]
    refused(
        capsys,
        ["benchmark", "--ray-address", f"ray://127.0.0.1:{closed_port}", "--out", str(tmp_path / "out")],
        'with a ray:// address needs Ray Client (missing: grpc); install it with: pip install "ray[client]"',
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ModuleNotFoundError, match=r'ray:// address needs Ray Client; install it with: pip install "ray\[client\]"'):
        cluster.check_cluster("ray://head:10001")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--methods", "all,maml"], "methods == 'all,maml': 'all' already means every one (mtl, transfer, maml,"),
        (["--protocols", "paper,both"], "protocols == 'paper,both': 'both' already means every one (paper, select)"),
    ],
)
def test_all_with_names_says_all_means_every_one(tmp_path, capsys, flags, message):
    """``--methods all,maml`` once said "methods[0] == 'all', must be one of ..."."""
    with pytest.raises(SystemExit):
        main(["benchmark", *flags, "--out", str(tmp_path / "out")])
    assert message in capsys.readouterr().err


def test_a_config_that_is_a_folder_says_so(tmp_path, capsys, monkeypatch):
    """Once a raw "[Errno 21] Is a directory"."""
    no_compute(monkeypatch)
    refused(
        capsys, ["benchmark", "--config", str(tmp_path), "--out", str(tmp_path / "out")], f"config file {tmp_path} is a folder; give a YAML"
    )
    assert not (tmp_path / "out").exists()
