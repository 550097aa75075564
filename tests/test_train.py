"""Training: the updater's steps, determinism, snapshot/resume and train.py's command line, in-process."""

import collections
import copy
import errno
import gzip
import json
import os
import re
import shlex
import signal
import struct
import tempfile
from pathlib import Path
from types import SimpleNamespace

import chainer
import numpy as np
import pytest
from chainer.datasets import TupleDataset
from chainer.functions.connection import convolution_2d
from helpers import ROOT, write_idx, write_mnist_folder

import cli.train
from cli.train import build_parser, main, parse_args
from mnist.data import IMAGES_MAGIC, TRAIN_IMAGES
from model import cpu_kernels
from model.export import load_generator
from model.files import METADATA_ENTRY
from model.net import Generator
from training.extensions import EMA_WARMUP, GeneratorAverage, LinearDecay
from training.losses import class_loss, hinge_discriminator_loss, hinge_generator_loss
from training.trainer import build_trainer, last_iteration, run_info
from training.updater import DeviceData

TINY = ["--gen-ch", "8", "--dis-ch", "8", "--batchsize", "8", "--log-interval", "1"]


def tiny_dataset(n: int = 32) -> TupleDataset:
    rng = np.random.RandomState(0)
    return TupleDataset(rng.rand(n, 1, 28, 28).astype(np.float32), (np.arange(n) % 10).astype(np.int32))


def tiny_trainer(tmp_path, *flags: str, device: str = "@numpy"):
    args = parse_args([*TINY, "--out", str(tmp_path), *flags])
    return build_trainer(args, tiny_dataset(), chainer.get_device(device))


def params(link, field: str = "array") -> dict:
    """Copies of the link's weights (or with field="grad" their gradients), on the CPU."""
    return {
        name: chainer.backend.CpuDevice().send(getattr(param, field)).copy()
        for name, param in link.namedparams()
    }


def reported_update(updater) -> dict:
    """One update under a reporter that knows the networks, as the Trainer sets it up."""
    reporter = chainer.Reporter()
    for name, optimizer in updater.get_all_optimizers().items():
        reporter.add_observer(name, optimizer.target)
    with reporter.scope(observation := {}):
        updater.update()
    return observation


def test_training_iterations_change_both_networks_and_report_finite_losses(tmp_path):
    updater = tiny_trainer(tmp_path).updater
    gen, dis = updater.get_optimizer("gen").target, updater.get_optimizer("dis").target
    before = params(gen), params(dis)
    for _ in range(3):
        observation = reported_update(updater)
        assert np.isfinite(float(observation["gen/loss"].array))
        assert np.isfinite(float(observation["dis/loss"].array))
    # While every logit lies inside the hinge's margin (-1, 1), as at the start, D's output bias gets
    # exactly zero gradient: the real images pull it down as hard as the fake ones push it up.
    for net, old, still in zip((gen, dis), before, (set(), {"/fc/b"}), strict=True):
        changed = {name for name, array in params(net).items() if not np.array_equal(array, old[name])}
        assert changed == old.keys() - still, f"{type(net).__name__}: only {sorted(changed)} changed"
    assert updater.iteration == 3


class FunctionCounter(chainer.FunctionHook):
    """Counts function applications, those of the backward passes' gradient nodes included."""

    name = "FunctionCounter"

    def __init__(self):
        self.applications = collections.Counter()

    def forward_preprocess(self, function, in_data):
        self.applications[function.label] += 1


MAX_FUNCTION_APPLICATIONS = 20


def test_a_training_iteration_applies_at_most_20_functions(tmp_path):
    """A step's time on a GPU, and at small batches on the CPU, is Chainer's work per function call:
    the fused functions of model/net.py and training/losses.py keep the count down (289 before,
    then 144), and their gradients are computed without a node of their own."""
    updater = tiny_trainer(tmp_path).updater
    assert updater.class_weight > 0  # the shipped recipe, class head included
    updater.update()
    with FunctionCounter() as counter:
        updater.update()
    count = sum(counter.applications.values())
    assert count <= MAX_FUNCTION_APPLICATIONS, counter.applications.most_common()


def test_the_first_step_checks_every_functions_input_types_and_later_steps_skip_it(tmp_path, monkeypatch):
    updater = tiny_trainer(tmp_path).updater
    checked = []
    check = chainer.FunctionNode._check_data_type_forward

    def counted_check(node, in_data):
        checked.append(node)
        return check(node, in_data)

    monkeypatch.setattr(chainer.FunctionNode, "_check_data_type_forward", counted_check)
    with FunctionCounter() as counter:
        updater.update()
    assert len(checked) == sum(counter.applications.values())
    checked.clear()
    updater.update()
    assert not checked and chainer.config.type_check


@pytest.mark.gpu
# Chainer 7.8.1's indexing backward calls an API that CuPy 13 deprecates
@pytest.mark.filterwarnings("ignore:.*scatter_add. is deprecated:DeprecationWarning")
def test_a_gpu_run_follows_the_cpu_run_up_to_float_rounding(tmp_path):
    """Same seed and data on CuPy and NumPy: the same losses for three iterations and then the same
    gradients, so the noise, the shuffling, spectral norm's vectors and the optimizers take one path."""
    cpu, gpu = (tiny_trainer(tmp_path / name, device=name).updater for name in ("@numpy", "@cupy:0"))
    for _ in range(3):
        ours, theirs = reported_update(gpu), reported_update(cpu)
        for key in ("gen/loss", "dis/loss"):
            assert float(ours[key].array) == pytest.approx(float(theirs[key].array), rel=1e-3, abs=1e-5), key
    for net in ("gen", "dis"):
        cpu_grads, gpu_grads = (params(u.get_optimizer(net).target, "grad") for u in (cpu, gpu))
        scale = max(float(np.abs(grad).max()) for grad in cpu_grads.values())
        for name, grad in cpu_grads.items():
            # Not the weights: Adam moves a weight whose gradient is only rounding noise (a bias before
            # batch norm) by the full rate either way. A wrong gradient is off at the gradients' scale.
            np.testing.assert_allclose(
                gpu_grads[name], grad, rtol=0, atol=1e-3 * scale, err_msg=f"{net}{name}"
            )


def test_device_data_gathers_the_examples_at_the_indices_with_one_hot_labels():
    dataset = tiny_dataset()
    images, labels = DeviceData(dataset, chainer.get_device("@numpy")).batch([13, 0, 13])
    np.testing.assert_array_equal(images, dataset._datasets[0][[13, 0, 13]])
    np.testing.assert_array_equal(labels.argmax(axis=1), [3, 0, 3])
    np.testing.assert_array_equal(labels.sum(axis=1), [1, 1, 1])
    assert images.dtype == labels.dtype == np.float32


def test_hinge_losses_on_known_logits():
    y_real, y_fake = np.array([2.0, 0.5], np.float32), np.array([-2.0, 0.5], np.float32)
    # D: mean(relu(1 - [2, 0.5])) + mean(relu(1 + [-2, 0.5])) = 0.25 + 0.75; G: -mean(y_fake)
    assert float(hinge_discriminator_loss(y_real, y_fake).array) == pytest.approx(1.0)
    assert float(hinge_generator_loss(y_fake).array) == pytest.approx(0.75)


def test_class_loss_is_the_cross_entropy_of_the_labels():
    logits = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]], np.float32))
    labels = np.array([[1, 0, 0], [0.5, 0, 0.5]], np.float32)
    expected = -(np.log(0.5) + 0.5 * np.log(0.1) + 0.5 * np.log(0.8)) / 2
    assert float(class_loss(logits, labels).array) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("class_weight", [0.0, 0.5])
def test_generator_step_uses_only_the_generator_loss(tmp_path, class_weight):
    """G's gradients equal those of the hinge G loss of D(G(z)), plus the weighted class loss of D's
    class head where there is one, alone: nothing of D's loss leaks in."""
    updater = tiny_trainer(tmp_path, "--class-weight", str(class_weight)).updater
    gen_optimizer = updater.get_optimizer("gen")
    gen, dis = gen_optimizer.target, updater.get_optimizer("dis").target
    z = np.random.RandomState(1).uniform(-1, 1, (8, 100)).astype(np.float32)
    updater.sample_noise = lambda n, z_size: z
    _, labels = updater.data.batch(np.arange(8))
    seen = {}

    def copy_dis(optimizer):  # D as G's step finds it: updated, its spectral norm vectors not yet moved on
        seen["dis"] = copy.deepcopy(dis)

    def check_gradients(optimizer):  # runs after backward, before the weights move
        gen_alone = copy.deepcopy(gen)
        gen_alone.cleargrads()
        features = seen["dis"].features(gen_alone(z, labels))
        loss = hinge_generator_loss(seen["dis"].judge(features, labels))
        if class_weight:
            loss += class_weight * class_loss(seen["dis"].classes(features), labels)
        loss.backward()
        seen["expected"] = {name: p.grad.copy() for name, p in gen_alone.namedparams()}
        seen["actual"] = {name: p.grad.copy() for name, p in gen.namedparams()}

    updater.get_optimizer("dis").add_hook(copy_dis, name="copy_dis", timing="post")
    gen_optimizer.add_hook(check_gradients, name="check_gradients")
    updater.get_iterator("main").order_sampler = lambda order, position: np.arange(len(order))
    updater.get_iterator("main").reset()
    reported_update(updater)
    for name, expected in seen["expected"].items():
        np.testing.assert_allclose(seen["actual"][name], expected, rtol=1e-5, atol=1e-7, err_msg=name)


def test_the_generator_step_leaves_the_discriminator_gradients_alone(tmp_path):
    """G's loss is backpropagated through D to G's weights only: D's gradients stay those of D's step."""
    updater = tiny_trainer(tmp_path, "--class-weight", "0.5").updater
    dis_optimizer = updater.get_optimizer("dis")
    after_dis_step = {}
    dis_optimizer.add_hook(
        lambda optimizer: after_dis_step.update(params(optimizer.target, "grad")), name="copy", timing="post"
    )
    reported_update(updater)
    for name, grad in params(dis_optimizer.target, "grad").items():
        np.testing.assert_array_equal(grad, after_dis_step[name], err_msg=name)


def losses(out) -> list[tuple[float, float]]:
    return [(entry["gen/loss"], entry["dis/loss"]) for entry in json.loads((out / "log").read_text())]


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("mnist"), n=32)


def run_train(mnist_folder, out, *flags: str) -> int:
    return main([*TINY, "--data", str(mnist_folder), "--out", str(out), *flags])


@pytest.fixture(scope="module")
def uninterrupted(mnist_folder, tmp_path_factory):
    """2 epochs of 4 iterations, snapshots every 3 iterations."""
    out = tmp_path_factory.mktemp("uninterrupted")
    assert run_train(mnist_folder, out, "--epoch", "2", "--snapshot-interval", "3") == 0
    return out


def test_a_cli_run_leaves_log_plot_previews_snapshots_and_generator(uninterrupted):
    names = {p.name for p in uninterrupted.iterdir()}
    assert {
        "log",
        "loss.png",
        "preview_epoch_1.png",
        "preview_epoch_2.png",
        "generator.npz",
        "generator.json",
    } <= names
    assert {"snapshot_iter_3", "snapshot_iter_6", "snapshot_iter_8"} <= names
    with np.load(uninterrupted / "snapshot_iter_8") as snapshot:
        assert "updater/model:dis/embed/W_u" in snapshot.files  # spectral norm's vector is saved


def test_generator_json_holds_the_whole_recipe_and_the_device(mnist_folder, uninterrupted):
    metadata = json.loads((uninterrupted / "generator.json").read_text())
    recipe = {key: metadata[key] for key in metadata if key not in ("date", "sha256", "architecture", "z")}
    assert recipe == {
        "data": str(mnist_folder),
        "train_images": 32,
        "planned_epochs": 2,
        "epochs": 2.0,
        "iterations": 8,
        "images_seen": 64,
        "last_iteration": 8,
        "seed": 0,
        "batchsize": 8,
        "lr": 2e-4,
        "beta1": 0.0,
        "lr_decay_start": 2 / 3,
        "lr_decay_start_iteration": 5,  # round(2/3 * 8)
        "discriminator": "projection",
        "discriminator_ch": 8,
        "loss": "hinge",
        "class_weight": 0.1,
        "ema_decay": 0.999,
        "ema_warmup": EMA_WARMUP,
        "device": "@numpy",
    }
    assert metadata["architecture"]["ch"] == 8


def test_the_exported_generator_has_label_batch_norms_the_app_loads(uninterrupted):
    gen, _ = load_generator(uninterrupted)
    assert np.abs(gen.bn1.gain.W.array).max() > 0  # the labels' gains left their zero start


def test_a_cli_run_trains_with_the_fast_cpu_kernels(mnist_folder, tmp_path, monkeypatch):
    kernels = []

    def build(*args, **kwargs):
        kernels.append(convolution_2d.Convolution2DFunction._forward_cpu_core)
        return real(*args, **kwargs)

    real = cli.train.build_trainer
    monkeypatch.setattr(cli.train, "build_trainer", build)
    assert (
        main([*TINY, "--data", str(mnist_folder), "--out", str(tmp_path), "--limit", "8", "--epoch", "1"])
        == 0
    )
    assert kernels == [cpu_kernels.conv_forward]


def test_the_defaults_are_the_recipe_the_shipped_generator_records():
    """What the shipped generator.json records of its run, run_info makes again from the defaults."""
    shipped = json.loads((ROOT / "weights" / "generator.json").read_text())
    args = parse_args([])
    end = last_iteration(args, shipped["train_images"])
    recipe = run_info(args, range(shipped["train_images"]), "@numpy", end)
    del recipe["data"], recipe["device"]  # where this run would read MNIST, and on what it runs
    assert recipe == {key: shipped[key] for key in recipe}
    assert (args.epoch, args.gen_ch) == (shipped["planned_epochs"], shipped["architecture"]["ch"])
    assert args.snapshot_interval is None, "a snapshot every epoch, whatever the data size"
    assert "weights/generator.npz" in build_parser().format_help()


def test_by_default_snapshots_and_exports_come_every_epoch(mnist_folder, tmp_path):
    assert run_train(mnist_folder, tmp_path, "--epoch", "2") == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("snapshot_")) == [
        "snapshot_iter_4",
        "snapshot_iter_8",
    ]


def test_a_run_shorter_than_the_log_interval_still_writes_its_log_and_plot(mnist_folder, tmp_path):
    assert run_train(mnist_folder, tmp_path, "--epoch", "1", "--log-interval", "100") == 0
    assert [entry["iteration"] for entry in json.loads((tmp_path / "log").read_text())] == [4]
    assert (tmp_path / "loss.png").is_file()


def test_same_seed_same_data_gives_the_same_losses(mnist_folder, uninterrupted, tmp_path):
    assert run_train(mnist_folder, tmp_path, "--epoch", "2", "--snapshot-interval", "3") == 0
    assert losses(tmp_path) == losses(uninterrupted)
    assert all(np.isfinite(losses(tmp_path)).ravel())


def test_another_seed_gives_other_losses(mnist_folder, uninterrupted, tmp_path):
    assert run_train(mnist_folder, tmp_path, "--epoch", "2", "--seed", "1") == 0
    assert losses(tmp_path) != losses(uninterrupted)


def same_generator(out, other) -> None:
    """The two runs exported bit-identical generators."""
    assert load_generator(out)[1]["sha256"] == load_generator(other)[1]["sha256"]


@pytest.mark.parametrize(
    "other", [["--dis-ch", "16"], ["--gen-ch", "16"]], ids=["discriminator", "generator"]
)
def test_a_snapshot_of_other_networks_is_one_line(mnist_folder, uninterrupted, tmp_path, capsys, other):
    snapshot = uninterrupted / "snapshot_iter_3"
    assert run_train(mnist_folder, tmp_path, *other, "--resume", str(snapshot)) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"train.py: error: --resume {snapshot}: not a snapshot of this trainer")
    assert error.count("\n") == 1


def test_linear_decay_holds_the_rate_until_its_start_then_lowers_it_to_zero_at_the_end():
    decay = LinearDecay(2e-4, start=100, end=300)
    rates = [decay.rate(iteration) for iteration in (0, 100, 200, 299, 300, 400)]
    assert rates == pytest.approx([2e-4, 2e-4, 1e-4, 1e-6, 0, 0])


def test_linear_decay_starting_at_the_end_keeps_the_rate_constant():
    decay = LinearDecay(2e-4, start=300, end=300)
    assert [decay.rate(iteration) for iteration in (0, 299)] == [2e-4, 2e-4]


def test_a_run_resumed_with_more_epochs_decays_over_its_new_length(mnist_folder, uninterrupted, tmp_path):
    snapshot = uninterrupted / "snapshot_iter_3"
    assert run_train(mnist_folder, tmp_path, "--epoch", "3", "--resume", str(snapshot)) == 0
    metadata = json.loads((tmp_path / "generator.json").read_text())
    assert (metadata["last_iteration"], metadata["lr_decay_start_iteration"]) == (12, 8)
    legs = [(leg["from_iteration"], leg["last_iteration"]) for leg in metadata["legs"]]
    assert legs == [(0, 8), (3, 12)]


@pytest.mark.parametrize(
    ("start", "shares"), [("0.25", [1, 1, 2 / 3, 1 / 3]), ("1", [1, 1, 1, 1])], ids=["decayed", "constant"]
)
def test_the_decay_starts_at_a_share_of_the_run_and_1_keeps_the_rate(tmp_path, start, shares):
    """4 iterations: from 0.25, the rates of updates 2-4 fall towards 0 at the end; 1 never lowers them."""
    trainer = tiny_trainer(tmp_path, "--epoch", "1", "--lr-decay-start", start)
    used = {name: [] for name in ("gen", "dis")}
    for name, optimizer in trainer.updater.get_all_optimizers().items():
        optimizer.add_hook(lambda optimizer, rates=used[name]: rates.append(optimizer.alpha), name="rate")
    trainer.run()
    assert used["gen"] == used["dis"] == pytest.approx([2e-4 * share for share in shares])


@pytest.mark.slow
def test_another_decay_start_takes_over_a_run_resumed_from_a_snapshot(mnist_folder, uninterrupted, tmp_path):
    flags = ("--epoch", "2", "--snapshot-interval", "3", "--lr-decay-start", "0.375")  # from iteration 3
    assert run_train(mnist_folder, tmp_path / "straight", *flags) == 0
    early, default = losses(tmp_path / "straight"), losses(uninterrupted)  # the default falls from 5
    assert early[:4] == default[:4], "steps 1-4 at the full rate"
    assert all(a != b for a, b in zip(early[4:], default[4:], strict=True)), "then the rate falls sooner"
    # The default run's snapshot before either decay, and the early-decay run's own in the middle of it.
    for snapshot in (uninterrupted / "snapshot_iter_3", tmp_path / "straight" / "snapshot_iter_6"):
        resumed = tmp_path / f"from_{snapshot.parent.name}"
        assert run_train(mnist_folder, resumed, *flags, "--resume", str(snapshot)) == 0
        assert losses(resumed) == early, snapshot
        metadata = json.loads((resumed / "generator.json").read_text())
        assert (metadata["lr_decay_start"], metadata["lr_decay_start_iteration"]) == (0.375, 3)
        # The default run's snapshot begins a second leg; the early-decay run's own goes on with its one.
        legs = [(leg["from_iteration"], leg["lr_decay_start_iteration"]) for leg in metadata.get("legs", [])]
        assert legs == ([(0, 5), (3, 3)] if snapshot.parent == uninterrupted else [])
        same_generator(resumed, tmp_path / "straight")


def averaged_arrays(gen: Generator) -> dict:
    """What GeneratorAverage averages: the weights and the batch norms' running statistics, by name."""
    arrays = {name: param.array for name, param in gen.namedparams()}
    for path, link in gen.namedlinks():
        for name in link._persistent:
            if isinstance(getattr(link, name), np.ndarray):
                arrays[f"{path}/{name}"] = getattr(link, name)
    return arrays


def test_the_weight_average_warms_up_by_the_num_updates_rule():
    """After update t the average is decay_t * average + (1 - decay_t) * live, with
    decay_t = min(ema, (1 + t) / (10 + t)): after 5 updates little of the initial weights is left."""
    np.random.seed(0)
    gen = Generator(ch=4)
    average = GeneratorAverage(gen, 0.999)
    expected = {name: array.copy() for name, array in averaged_arrays(gen).items()}
    rng = np.random.RandomState(1)
    for t in range(1, 6):
        for array in averaged_arrays(gen).values():
            array[...] = rng.normal(0, 1, array.shape)
        average(SimpleNamespace(updater=SimpleNamespace(iteration=t)))
        decay = min(0.999, (1 + t) / (10 + t))
        for name, live in averaged_arrays(gen).items():
            expected[name] = decay * expected[name] + (1 - decay) * live
    averaged = averaged_arrays(average.averaged)
    assert averaged.keys() == expected.keys() and "/bn1/bn/avg_mean" in averaged
    for name, array in averaged.items():
        np.testing.assert_allclose(array, expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    assert [average.decay_at(t) for t in (1, 5, 100, 10_000)] == pytest.approx(
        [2 / 11, 6 / 15, 101 / 110, 0.999]
    )
    # Left of the initial weights: 2/11 * 3/12 * 4/13 * 5/14 * 6/15 = 0.002, where 0.999 ** 5 = 0.995.
    assert np.prod([average.decay_at(t) for t in range(1, 6)]) == pytest.approx(720 / 360_360)


def test_resume_continues_exactly_where_the_snapshot_stopped(mnist_folder, uninterrupted, tmp_path):
    flags = ("--epoch", "2", "--snapshot-interval", "3", "--resume", str(uninterrupted / "snapshot_iter_3"))
    assert run_train(mnist_folder, tmp_path, *flags) == 0
    written = {p.name for p in tmp_path.iterdir()}
    assert {"snapshot_iter_6", "snapshot_iter_8", "preview_epoch_2.png"} <= written
    assert sorted(name for name in written if name.startswith("snapshot_")) == [
        "snapshot_iter_6",
        "snapshot_iter_8",
    ], "snapshots where an uninterrupted run takes them: not started over, none extra"
    assert losses(tmp_path) == losses(uninterrupted)  # the log comes back with the snapshot
    with (
        np.load(tmp_path / "snapshot_iter_8") as resumed,
        np.load(uninterrupted / "snapshot_iter_8") as straight,
    ):
        weights = [key for key in straight.files if key.startswith("updater/model:")]
        averaged = [key for key in straight.files if key.startswith("extensions/GeneratorAverage/")]
        assert weights and averaged
        for key in weights + averaged:
            np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)
    same_generator(tmp_path, uninterrupted)


def test_export_writes_the_generator_and_a_preview(mnist_folder, tmp_path):
    assert (
        run_train(mnist_folder, tmp_path / "out", "--epoch", "1", "--export", str(tmp_path / "weights")) == 0
    )
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == [
        "generator.json",
        "generator.npz",
        "preview.png",
    ]


@pytest.mark.parametrize(
    ("flags", "snapshot_prefix", "ema_decay"),
    [((), "extensions/GeneratorAverage/averaged/", 0.999), (("--ema", "0"), "updater/model:gen/", 0.0)],
)
def test_export_only_writes_a_snapshots_average_or_last_iterate_without_training(
    mnist_folder, uninterrupted, tmp_path, flags, snapshot_prefix, ema_decay
):
    snapshot = uninterrupted / "snapshot_iter_3"
    export = ("--export-only", "--resume", str(snapshot), "--export", str(tmp_path / "weights"), *flags)
    assert run_train(mnist_folder, tmp_path / "out", "--epoch", "2", *export) == 0
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "it trained"
    metadata = json.loads((tmp_path / "weights" / "generator.json").read_text())
    assert (metadata["iterations"], metadata["ema_decay"]) == (3, ema_decay)
    with np.load(tmp_path / "weights" / "generator.npz") as exported, np.load(snapshot) as saved:
        assert len(exported.files) > 4
        for key in set(exported.files) - {METADATA_ENTRY}:
            np.testing.assert_array_equal(exported[key], saved[snapshot_prefix + key], err_msg=key)
    assert (tmp_path / "weights" / "preview.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batchsize", "0"], "argument --batchsize/-b: must be at least 1, got 0"),
        (["--lr", "nan"], "argument --lr: must be a positive number, got nan"),
        (["--epoch", "two"], "argument --epoch/-e: not a whole number: 'two'"),
        (["--lr-decay-start", "1.5"], "argument --lr-decay-start: must be between 0 and 1, got 1.5"),
        (["--lr-decay-start", "-0.1"], "argument --lr-decay-start: must be between 0 and 1, got -0.1"),
        (["--batch", "8"], "unrecognized arguments: --batch 8"),  # no abbreviations of --batchsize
        (
            ["--communicator", "pure_nccl", "--device", "0"],
            "--device: --communicator pure_nccl gives each process its own GPU",
        ),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--dis", "8"], "unrecognized arguments: --dis 8"),  # not taken for --dis-ch
        (["--export-only", "--export", "weights"], "--export-only needs --resume and --export"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"train.py: error: {message}\n"


def test_a_missing_data_folder_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"train.py: error: {tmp_path / 'nowhere'}: data directory not found\n"


def test_no_network_without_data_is_one_line_and_exit_2(no_network, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: could not download MNIST (") and err.count("\n") == 1


def test_a_truncated_data_file_names_the_file(mnist_folder, tmp_path, capsys):
    broken = write_mnist_folder(tmp_path, n=4)
    raw = (broken / TRAIN_IMAGES).read_bytes()
    (broken / TRAIN_IMAGES).write_bytes(raw[: len(raw) // 2])
    assert main(["--data", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"train.py: error: {broken / TRAIN_IMAGES}: ")


def test_wrong_magic_in_a_data_file_is_one_line(tmp_path, capsys):
    broken = write_mnist_folder(tmp_path, n=4)
    write_idx(broken / TRAIN_IMAGES, np.zeros(4), IMAGES_MAGIC - 2)
    assert main(["--data", str(broken), "--out", str(tmp_path / "out")]) == 2
    assert "wrong magic number 0x00000801, expected 0x00000803" in capsys.readouterr().err


def test_a_missing_snapshot_is_one_line(mnist_folder, tmp_path, capsys):
    assert run_train(mnist_folder, tmp_path, "--resume", str(tmp_path / "snapshot_iter_9")) == 2
    assert (
        capsys.readouterr().err
        == f"train.py: error: --resume {tmp_path / 'snapshot_iter_9'}: file not found\n"
    )


def test_a_bad_device_is_one_line(capsys):
    assert main(["--device", "@nowhere:7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: --device @nowhere:7: ") and err.count("\n") == 1


@pytest.mark.parametrize("spec", ["0", "@cupy:0"])
def test_a_gpu_without_cupy_says_what_to_install_in_one_line(monkeypatch, capsys, spec):
    monkeypatch.setattr(chainer.backends.cuda, "available", False)
    assert main(["--device", spec]) == 2
    message = (
        f"train.py: error: --device {spec}: needs CuPy (pip install -r requirements-gpu.txt) and a GPU\n"
    )
    assert capsys.readouterr().err == message


# ---------------------------------------------------------------- faults: checks, signals, a full disk


def stop_at(monkeypatch, iteration: int, signum: int) -> None:
    """The run sends itself `signum` during iteration `iteration`, as a scheduler or Ctrl-C would."""
    real = cli.train.build_trainer

    def build(*args, **kwargs):
        trainer = real(*args, **kwargs)
        trainer.extend(  # a stateless trigger, so that the snapshots have their usual keys
            lambda trainer: signal.raise_signal(signum),
            trigger=lambda trainer: trainer.updater.iteration == iteration,
            name="send_signal",
        )
        return trainer

    monkeypatch.setattr(cli.train, "build_trainer", build)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_training_with_a_snapshot_and_the_command_that_resumes_it(
    mnist_folder, uninterrupted, tmp_path, monkeypatch, capsys, signum, status
):
    flags = ["--epoch", "2", "--snapshot-interval", "3"]
    handler = signal.getsignal(signum)
    stop_at(monkeypatch, 4, signum)
    assert run_train(mnist_folder, tmp_path, *flags) == status
    monkeypatch.undo()
    lines = capsys.readouterr().err.splitlines()
    name = signal.Signals(signum).name
    assert len(lines) == 1 and lines[0].startswith(
        f"train.py: stopped by {name} at iteration 4; resume with: "
    )
    command = shlex.split(lines[0].split("resume with: ")[1])
    assert command[:2] == ["python", "train.py"] and command[-2:] == [
        "--resume",
        str(tmp_path / "snapshot_iter_4"),
    ]
    assert signal.getsignal(signum) == handler, "the signal's handler did not come back"
    assert main(command[2:]) == 0
    same_generator(tmp_path, uninterrupted)
    assert losses(tmp_path) == losses(uninterrupted)


def test_a_signal_right_after_a_snapshot_names_that_snapshot(mnist_folder, tmp_path, monkeypatch, capsys):
    stop_at(monkeypatch, 3, signal.SIGTERM)
    assert run_train(mnist_folder, tmp_path, "--epoch", "2", "--snapshot-interval", "3") == 143
    assert capsys.readouterr().err.rstrip().endswith(f"--resume {tmp_path / 'snapshot_iter_3'}")
    assert sorted(p.name for p in tmp_path.glob("snapshot_iter_*")) == ["snapshot_iter_3"]


def full_disk_for(monkeypatch, name: str) -> None:
    """Writing a file whose name starts with `name` fails as on a full disk; other files are written."""
    real_open, real_write, full = os.open, os.write, set()

    def open_(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        if Path(path).name.lstrip(".").startswith(name):
            full.add(fd)
        return fd

    def write(fd, data):
        if fd in full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_names_the_snapshot_keeps_the_last_one_and_says_how_to_resume(
    mnist_folder, tmp_path, monkeypatch, capsys
):
    full_disk_for(monkeypatch, "snapshot_iter_6")
    flags = ["--epoch", "2", "--snapshot-interval", "3"]
    assert run_train(mnist_folder, tmp_path, *flags) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"train.py: error: {tmp_path / 'snapshot_iter_6'}: no space left on device (")
    assert re.search(r"\(\d[\d,]* bytes to write, \d[\d,]* bytes free\)", err)
    resume = f"resume with: python train.py {shlex.join(TINY)} --data {mnist_folder} --out {tmp_path} "
    assert resume in err and err.endswith(f"--resume {tmp_path / 'snapshot_iter_3'}\n")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".", "snapshot"))) == [
        "snapshot_iter_3"
    ], "a temporary file was left, or the earlier snapshot was lost"
    assert run_train(mnist_folder, tmp_path, *flags, "--resume", str(tmp_path / "snapshot_iter_3")) == 0


def test_a_full_disk_during_an_export_keeps_the_previous_generator(
    mnist_folder, tmp_path, monkeypatch, capsys
):
    out, weights = tmp_path / "out", tmp_path / "weights"
    assert run_train(mnist_folder, tmp_path / "first", "--epoch", "1", "--export", str(weights)) == 0
    before = {p.name: p.read_bytes() for p in weights.iterdir()}
    full_disk_for(monkeypatch, "preview.png")
    assert run_train(mnist_folder, out, "--epoch", "2", "--seed", "1", "--export", str(weights)) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert err.startswith(f"train.py: error: {weights / 'preview.png'}: no space left on device (")
    assert f"the files in {weights} are as they were; once it can be written, export with: " in err
    assert err.endswith(f"--resume {out / 'snapshot_iter_8'} --export-only\n")
    assert {p.name: p.read_bytes() for p in weights.iterdir()} == before
    again = shlex.split(err.split("export with: ")[1])[2:]
    assert main(again) == 0 and load_generator(weights)[1]["iterations"] == 8


def spoiled_images(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir()
    write_mnist_folder(folder, n=4)
    write_idx(folder / TRAIN_IMAGES, images, IMAGES_MAGIC)
    return folder


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((4, 32, 32)), "images are 32x32, expected 28x28"),
        (np.zeros((4, 28, 27)), "images are 28x27, expected 28x28"),
        (np.zeros((0, 28, 28)), "holds no images"),
    ],
)
def test_images_of_another_shape_or_none_are_refused_before_anything_is_written(
    tmp_path, capsys, images, message
):
    data = spoiled_images(tmp_path / "mnist", images)
    assert main(["--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"train.py: error: {data / TRAIN_IMAGES}: {message}\n"
    assert not (tmp_path / "out").exists()


def test_an_idx_header_whose_sizes_overflow_is_refused(tmp_path, capsys):
    data = write_mnist_folder(tmp_path, n=4)
    header = struct.pack(">4I", IMAGES_MAGIC, 2**31, 2**31, 4)
    (data / TRAIN_IMAGES).write_bytes(gzip.compress(header))
    assert main(["--data", str(data), "--out", str(tmp_path / "out")]) == 2
    assert "holds 0 data bytes, header (2147483648, 2147483648, 4) says" in capsys.readouterr().err


def test_a_batch_larger_than_the_data_is_refused(mnist_folder, tmp_path, capsys):
    assert run_train(mnist_folder, tmp_path / "out", "--limit", "4") == 2  # TINY's batch is 8
    assert capsys.readouterr().err == "train.py: error: --batchsize 8: more than the 4 training images\n"
    assert not (tmp_path / "out").exists()


def read_only(monkeypatch) -> None:
    """Every folder refuses new files, as a read-only mount does (root writes through permissions)."""

    def refused(*args, **kwargs):
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)


@pytest.mark.parametrize(
    ("where", "flag", "spoil", "problem"),
    [
        ("out", "--out", lambda path: path.write_text("a file"), "{path} is not a folder"),
        ("out/sub", "--out", lambda path: path.parent.write_text("a file"), "{parent} is not a folder"),
        ("out", "--out", None, "cannot write in {base} (Read-only file system)"),
        ("weights", "--export", lambda path: path.write_text("a file"), "{path} is not a folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_training(
    mnist_folder, tmp_path, monkeypatch, capsys, where, flag, spoil, problem
):
    base = tmp_path / "base"
    base.mkdir()
    path = base / where
    if spoil is None:
        read_only(monkeypatch)
    else:
        spoil(path)
    outputs = {"--out": base / "out", "--export": base / "weights", flag: path}
    before = sorted(base.rglob("*"))
    started = []
    monkeypatch.setattr(cli.train, "train", lambda *args: started.append(args))
    assert run_train(mnist_folder, outputs["--out"], "--export", str(outputs["--export"])) == 2
    expected = problem.format(path=path, parent=path.parent, base=base)
    assert capsys.readouterr().err == f"train.py: error: {flag} {path}: {expected}\n"
    assert not started and sorted(base.rglob("*")) == before, "it trained, or wrote something"


def test_resuming_with_other_data_names_the_flags(mnist_folder, uninterrupted, tmp_path, capsys):
    snapshot = uninterrupted / "snapshot_iter_3"
    assert run_train(mnist_folder, tmp_path, "--limit", "16", "--resume", str(snapshot)) == 2
    assert capsys.readouterr().err == (
        f"train.py: error: --resume {snapshot}: taken on 32 training images, this run has 16: "
        "pass the --data and --limit it was taken with\n"
    )


def test_resuming_a_finished_run_says_there_is_nothing_to_train(
    mnist_folder, uninterrupted, tmp_path, capsys
):
    snapshot = uninterrupted / "snapshot_iter_8"
    assert run_train(mnist_folder, tmp_path, "--epoch", "2", "--resume", str(snapshot)) == 0
    assert (
        f"--resume {snapshot}: at epoch 2 of --epoch 2, nothing is left to train" in capsys.readouterr().out
    )
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_the_next_snapshot_removes_what_a_killed_one_left(mnist_folder, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    leftover = tmp_path / ".snapshot_iter_3.0badf00d.tmp"  # the name write_file gives it
    leftover.write_bytes(b"half a snapshot")
    assert run_train(mnist_folder, tmp_path, "--epoch", "1") == 0
    assert not leftover.exists() and (tmp_path / "snapshot_iter_4").is_file()
