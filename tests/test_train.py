"""Training: the updater's steps, determinism, snapshot/resume and train.py's command line, in-process."""

import copy
import json

import chainer
import numpy as np
import pytest
from chainer.datasets import TupleDataset
from helpers import write_idx, write_mnist_folder

from model.export import load_generator
from model.net import DISCRIMINATORS, Discriminator
from training.augment import random_shifts, translate
from training.cli import main, parse_args
from training.data import IMAGES_MAGIC, TRAIN_IMAGES
from training.extensions import LinearDecay
from training.trainer import build_trainer
from training.updater import LOSSES, hinge_discriminator_loss, hinge_generator_loss

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


@pytest.mark.parametrize("flags", [[], ["--label-bn"]], ids=["plain", "label-bn"])
def test_training_iterations_change_both_networks_and_report_finite_losses(tmp_path, flags):
    updater = tiny_trainer(tmp_path, *flags).updater
    gen, dis = updater.get_optimizer("gen").target, updater.get_optimizer("dis").target
    before = params(gen), params(dis)
    for _ in range(3):
        observation = reported_update(updater)
        assert np.isfinite(float(observation["gen/loss"].array))
        assert np.isfinite(float(observation["dis/loss"].array))
    for net, old in zip((gen, dis), before, strict=True):
        changed = [name for name, array in params(net).items() if not np.array_equal(array, old[name])]
        assert len(changed) == len(old), f"{type(net).__name__}: only {changed} changed"
    assert updater.iteration == 3


def gpu_count() -> int:
    if not chainer.backends.cuda.available:
        return 0
    try:
        return chainer.backends.cuda.cupy.cuda.runtime.getDeviceCount()
    except chainer.backends.cuda.cupy.cuda.runtime.CUDARuntimeError:
        return 0


@pytest.mark.skipif(gpu_count() == 0, reason="needs CuPy and a GPU (run on a GPU box)")
# Chainer 7.8.1's indexing backward calls an API that CuPy 13 deprecates
@pytest.mark.filterwarnings("ignore:.*scatter_add. is deprecated:DeprecationWarning")
@pytest.mark.parametrize("dis", DISCRIMINATORS)
def test_a_gpu_run_follows_the_cpu_run_up_to_float_rounding(tmp_path, dis):
    """Same seed and data on CuPy and NumPy: the same losses for three iterations and then the same
    gradients, so the noise, the shuffling, spectral norm's vectors and the optimizers take one path."""
    cpu, gpu = (
        tiny_trainer(tmp_path / name, "--dis", dis, device=name).updater for name in ("@numpy", "@cupy:0")
    )
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


def test_with_dis_steps_each_iteration_takes_that_many_d_steps_on_batches_of_their_own(tmp_path):
    updater = tiny_trainer(tmp_path, "--dis-steps", "3").updater
    gen_optimizer, dis_optimizer = updater.get_optimizer("gen"), updater.get_optimizer("dis")
    for _ in range(2):
        reported_update(updater)
    assert (gen_optimizer.t, dis_optimizer.t) == (2, 6)
    assert updater.iteration == 2
    assert updater.get_iterator("main").epoch_detail == pytest.approx(6 * 8 / 32)


def test_hinge_losses_on_known_logits():
    y_real, y_fake = np.array([2.0, 0.5], np.float32), np.array([-2.0, 0.5], np.float32)
    # D: mean(relu(1 - [2, 0.5])) + mean(relu(1 + [-2, 0.5])) = 0.25 + 0.75; G: -mean(y_fake)
    assert float(hinge_discriminator_loss(y_real, y_fake).array) == pytest.approx(1.0)
    assert float(hinge_generator_loss(y_fake).array) == pytest.approx(0.75)


@pytest.mark.parametrize("loss", LOSSES)
def test_generator_step_uses_only_the_generator_loss(tmp_path, loss):
    """G's gradients equal those of --loss's G loss of D(G(z)) alone: nothing of D's loss leaks in."""
    updater = tiny_trainer(tmp_path, "--loss", loss).updater
    generator_loss = LOSSES[loss][1]
    gen_optimizer = updater.get_optimizer("gen")
    gen, dis = gen_optimizer.target, updater.get_optimizer("dis").target
    z = np.random.RandomState(1).uniform(-1, 1, (8, 100)).astype(np.float32)
    updater.sample_noise = lambda n, z_size: z
    batch = updater.get_iterator("main").dataset[:8]
    labels = np.eye(10, dtype=np.float32)[[digit for _, digit in batch]]
    seen = {}

    def check_gradients(optimizer):  # runs after backward, before the weights move; D is already updated
        gen_alone, dis_now = copy.deepcopy(gen), copy.deepcopy(dis)
        gen_alone.cleargrads()
        generator_loss(dis_now(gen_alone(z, labels), labels)).backward()
        seen["expected"] = {name: p.grad.copy() for name, p in gen_alone.namedparams()}
        seen["actual"] = {name: p.grad.copy() for name, p in gen.namedparams()}

    gen_optimizer.add_hook(check_gradients, name="check_gradients")
    updater.get_iterator("main").order_sampler = lambda order, position: np.arange(len(order))
    updater.get_iterator("main").reset()
    reported_update(updater)
    for name, expected in seen["expected"].items():
        np.testing.assert_allclose(seen["actual"][name], expected, rtol=1e-5, atol=1e-7, err_msg=name)


def test_with_augment_every_discriminator_input_is_freshly_shifted(tmp_path, monkeypatch):
    """D's three inputs (real, fake in D's step, fake in G's step) each get their own random shifts."""
    updater = tiny_trainer(tmp_path, "--augment", "2").updater
    seen = []
    forward = Discriminator.forward

    def recording_forward(self, x, labels):
        seen.append(chainer.as_array(x).copy())
        return forward(self, x, labels)

    monkeypatch.setattr(Discriminator, "forward", recording_forward)
    updater.get_iterator("main").order_sampler = lambda order, position: np.arange(len(order))
    updater.get_iterator("main").reset()
    batch = updater.get_iterator("main").dataset[:8]
    real = np.stack([image for image, _ in batch])
    labels = np.eye(10, dtype=np.float32)[[digit for _, digit in batch]]
    rng = copy.deepcopy(updater.rng)
    gen_before = copy.deepcopy(updater.get_optimizer("gen").target)
    reported_update(updater)

    z = rng.uniform(-1, 1, (8, 100)).astype(np.float32)  # the noise is drawn first, then the shifts
    shifts = [random_shifts(rng, 8, 2) for _ in range(3)]
    fake = gen_before(z, labels).array  # G does not move between D's step and its own forward pass
    assert len(seen) == 3 and all(np.any(s != 0) for s in shifts)
    np.testing.assert_array_equal(seen[0], translate(real, shifts[0]).array)
    np.testing.assert_allclose(seen[1], translate(fake, shifts[1]).array, atol=1e-6)
    np.testing.assert_allclose(seen[2], translate(fake, shifts[2]).array, atol=1e-6)
    assert not np.allclose(seen[1], seen[2])


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
    metadata = json.loads((uninterrupted / "generator.json").read_text())
    assert metadata["iterations"] == 8 and metadata["images_seen"] == 64 and metadata["train_images"] == 32


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
    with np.load(out / "generator.npz") as ours, np.load(other / "generator.npz") as theirs:
        for key in theirs.files:
            np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)


def train_and_resume(mnist_folder, tmp_path, *flags: str):
    """Folders of a 2-epoch run with `flags` and of the same run resumed from its iteration-3 snapshot,
    checked to agree exactly."""
    flags = ("--epoch", "2", "--snapshot-interval", "3", *flags)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run_train(mnist_folder, straight, *flags) == 0
    assert run_train(mnist_folder, resumed, *flags, "--resume", str(straight / "snapshot_iter_3")) == 0
    assert losses(resumed) == losses(straight)
    same_generator(resumed, straight)
    return straight, resumed


def test_augmented_training_resumes_exactly_and_records_the_shift(mnist_folder, uninterrupted, tmp_path):
    straight, resumed = train_and_resume(mnist_folder, tmp_path, "--augment", "2")
    assert losses(straight) != losses(uninterrupted)  # D saw other images
    assert json.loads((resumed / "generator.json").read_text())["augment_pixels"] == 2


def test_projection_discriminator_trains_resumes_exactly_and_is_recorded(
    mnist_folder, uninterrupted, tmp_path
):
    straight, resumed = train_and_resume(mnist_folder, tmp_path, "--dis", "projection")
    assert losses(straight) != losses(uninterrupted)  # another D
    assert all(np.isfinite(losses(straight)).ravel())
    with np.load(straight / "snapshot_iter_8") as snapshot:
        assert "updater/model:dis/embed/W_u" in snapshot.files  # spectral norm's vector is saved
    assert json.loads((resumed / "generator.json").read_text())["discriminator"] == "projection"


def test_hinge_loss_trains_resumes_exactly_and_is_recorded(mnist_folder, uninterrupted, tmp_path):
    straight, resumed = train_and_resume(mnist_folder, tmp_path, "--loss", "hinge")
    assert losses(straight) != losses(uninterrupted)  # the same networks, another loss
    assert all(np.isfinite(losses(straight)).ravel())
    assert json.loads((resumed / "generator.json").read_text())["loss"] == "hinge"
    exported = tmp_path / "exported"
    export = ("--export-only", "--resume", str(straight / "snapshot_iter_3"), "--export", str(exported))
    assert run_train(mnist_folder, tmp_path / "out", *export) == 0  # no --loss: the snapshot knows its own
    assert json.loads((exported / "generator.json").read_text())["loss"] == "hinge"


def test_label_bn_trains_resumes_exactly_and_exports_a_generator_the_app_loads(
    mnist_folder, uninterrupted, tmp_path
):
    straight, resumed = train_and_resume(mnist_folder, tmp_path, "--label-bn")
    assert losses(straight) != losses(uninterrupted)  # another generator
    gen, metadata = load_generator(resumed)
    assert gen.label_bn and metadata["architecture"]["label_bn"] is True
    assert np.abs(gen.bn1.gain.W.array).max() > 0  # the labels' gains left their zero start


def test_dis_steps_train_resume_exactly_end_epochs_sooner_and_are_recorded(
    mnist_folder, uninterrupted, tmp_path
):
    straight, resumed = train_and_resume(mnist_folder, tmp_path, "--dis-steps", "2")
    assert len(losses(straight)) == 4, "2 epochs of 8 batches in 4 iterations of 2 batches"
    assert losses(straight) != losses(uninterrupted)[:4]
    metadata = json.loads((resumed / "generator.json").read_text())
    assert (metadata["dis_steps"], metadata["iterations"], metadata["images_seen"]) == (2, 4, 4 * 2 * 8)


@pytest.mark.parametrize(
    "other", [["--dis", "projection"], ["--label-bn"]], ids=["discriminator", "generator"]
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


@pytest.mark.parametrize(("dis_steps", "iterations"), [("1", 4), ("2", 2)])
def test_a_decayed_run_ends_with_both_rates_at_zero(tmp_path, dis_steps, iterations):
    trainer = tiny_trainer(tmp_path, "--epoch", "1", "--lr-decay-from", "1", "--dis-steps", dis_steps)
    trainer.run()
    assert trainer.updater.iteration == iterations
    assert [optimizer.alpha for optimizer in trainer.updater.get_all_optimizers().values()] == [0, 0]


def test_lr_decay_joins_a_run_resumed_from_a_snapshot_taken_without_it(mnist_folder, uninterrupted, tmp_path):
    flags = ("--epoch", "2", "--snapshot-interval", "3", "--lr-decay-from", "3")
    assert run_train(mnist_folder, tmp_path / "straight", *flags) == 0
    decayed, constant = losses(tmp_path / "straight"), losses(uninterrupted)
    assert decayed[:4] == constant[:4], "steps 1-4 at the full rate"
    assert all(a != b for a, b in zip(decayed[4:], constant[4:], strict=True)), "then the rate falls"
    # A constant-rate run's snapshot before the decay, and the decayed run's own in the middle of it.
    for snapshot in (uninterrupted / "snapshot_iter_3", tmp_path / "straight" / "snapshot_iter_6"):
        resumed = tmp_path / f"from_{snapshot.parent.name}"
        assert run_train(mnist_folder, resumed, *flags, "--resume", str(snapshot)) == 0
        assert losses(resumed) == decayed, snapshot
        metadata = json.loads((resumed / "generator.json").read_text())
        assert metadata["lr_decay_from"] == 3
        # The constant-rate run's snapshot begins a second leg; the decayed run's own goes on with its one.
        legs = [(leg["from_iteration"], leg["lr_decay_from"]) for leg in metadata.get("legs", [])]
        assert legs == ([(0, None), (3, 3)] if snapshot.parent == uninterrupted else [])
        same_generator(resumed, tmp_path / "straight")


def test_lr_decay_from_the_end_of_training_or_later_is_one_line(mnist_folder, tmp_path, capsys):
    assert run_train(mnist_folder, tmp_path, "--epoch", "2", "--lr-decay-from", "8") == 2
    error = capsys.readouterr().err
    assert error == "train.py: error: --lr-decay-from 8: training ends at iteration 8\n"


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
        assert weights
        for key in weights:
            np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


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
        for key in exported.files:
            np.testing.assert_array_equal(exported[key], saved[snapshot_prefix + key], err_msg=key)
    assert (tmp_path / "weights" / "preview.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batchsize", "0"], "argument --batchsize/-b: must be at least 1, got 0"),
        (["--lr", "nan"], "argument --lr: must be a positive number, got nan"),
        (["--epoch", "two"], "argument --epoch/-e: invalid positive_int value: 'two'"),
        (["--augment", "-1"], "argument --augment: must be at least 0, got -1"),
        (["--dis-steps", "0"], "argument --dis-steps: must be at least 1, got 0"),
        (["--lr-decay-from", "-5"], "argument --lr-decay-from: must be at least 0, got -5"),
        (
            ["--dis", "resnet"],
            "argument --dis: invalid choice: 'resnet' (choose from 'planes', 'projection')",
        ),
        (
            ["--loss", "wgan"],
            "argument --loss: invalid choice: 'wgan' (choose from 'nonsaturating', 'hinge')",
        ),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
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
    assert capsys.readouterr().err.startswith("train.py: error: --device @nowhere:7: ")
