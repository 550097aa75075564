"""bench.gpu_check: its checks rehearsed on the CPU, and run on GPU 0 where there is one."""

import json

import pytest

from bench import gpu_check


def test_a_bad_device_is_one_line_and_exit_2(capsys):
    assert gpu_check.main(["--device", "@nonsense:0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{gpu_check.PROG}: error: --device @nonsense:0")


def test_a_run_too_short_to_resume_is_one_line_and_exit_2(capsys):
    assert gpu_check.main(["--device", "-1", "--iterations", "15"]) == 2
    assert (
        capsys.readouterr().err
        == f"{gpu_check.PROG}: error: --iterations 15: at least 16, for 3 before each stop\n"
    )


CHECKS = {
    "trains_with_snapshots",
    "sigterm_stops_with_a_snapshot",
    "resumes_where_it_stopped",
    "first_losses_match_a_cpu_run",
    "cpu_snapshot_resumes_on_the_device",
    "device_snapshot_resumes_on_the_cpu",
    "export_loads_in_the_app",
    "step_time",
}


@pytest.mark.slow
def test_the_cpu_rehearsal_passes_every_check_with_its_figure(tmp_path, capsys):
    """The GPU check's whole run on the CPU: every check passes, and runs on one device agree exactly."""
    flags = ["--iterations", "20", "--batchsize", "4", "--timed", "1", "--out", str(tmp_path)]
    assert gpu_check.main(["--device", "-1", *flags]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["pass"] and verdict["device"] == "@numpy"
    assert set(verdict["checks"]) == CHECKS
    assert verdict["checks"]["trains_with_snapshots"]["snapshots"] == [5, 10, 15, 20]
    for name, check in verdict["checks"].items():
        if "max_loss_difference" in check:
            assert check["max_loss_difference"] == 0, name


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.filterwarnings("default")  # the verdict is the check: CuPy's and Chainer's warnings are shown
def test_every_check_passes_on_gpu_0(tmp_path, capsys):
    """What `make gpu-check` runs, shorter: a failing check prints its figures in the assertion."""
    status = gpu_check.main(["--device", "0", "--iterations", "40", "--timed", "5", "--out", str(tmp_path)])
    verdict = json.loads(capsys.readouterr().out)
    assert status == 0, json.dumps(verdict["checks"], indent=2)
    assert set(verdict["checks"]) == CHECKS
