"""capgap.core.output as root, as CI runs: files replaced atomically, devices and FIFOs written through,
symlinks followed, folders and kernel trees refused before any work, with one line and exit 2."""

import os
import stat
import threading

import pytest

from capgap.core.errors import InputError
from capgap.core.output import check_output, write_output
from capgap.runs.records import RunRecord
from capgap.runs.store import RunStore


def test_regular_file_is_replaced_whole_keeping_its_permissions(tmp_path):
    path = tmp_path / "law.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    write_output(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["law.json"]  # no temporary file left


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "plan.csv"
    path.write_text("old")

    def broken(handle):
        handle.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match="No space left"):
        write_output(path, broken)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["plan.csv"]


def test_character_device_is_written_through_never_replaced(tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the device of /dev/null
    except PermissionError:
        pytest.skip("mknod not permitted here")
    write_output(node, "x" * 46_000)
    assert stat.S_ISCHR(node.stat().st_mode)
    write_output("/dev/null", "law")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_output(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_symlink_target_is_written_and_the_link_stays(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert write_output(link, "new") == target
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "later.json")
    write_output(dangling, "made")
    assert (tmp_path / "later.json").read_text() == "made" and dangling.is_symlink()


@pytest.mark.parametrize("where, message", [
    ("DIR", "is a folder"), ("/proc/law.json", "under /proc"), ("/sys/law.json", "under /sys"),
    ("DIR/missing/law.json", "does not exist"), ("FILE/law.json", "not a folder"),
])
def test_unwritable_places_are_refused_in_one_line(tmp_path, where, message):
    (tmp_path / "file").write_text("x")
    path = where.replace("DIR", str(tmp_path)).replace("FILE", str(tmp_path / "file"))
    with pytest.raises(InputError, match=message):
        check_output(path)
    assert not os.path.exists("/proc/law.json")


def _runs(tmp_path):
    store = tmp_path / "runs.jsonl"
    RunStore(store).extend([RunRecord(student_params=s, teacher_params=t, metrics={"eval_loss": 3 + s / t})
                            for s in (1_000_000, 2_000_000) for t in (4_000_000, 8_000_000, 16_000_000)])
    return store


@pytest.mark.parametrize("verb", ["fit", "export", "plot", "pareto", "plan"])
def test_every_writing_verb_refuses_a_folder_and_proc_before_its_work(tmp_path, run_cli, verb):
    store = _runs(tmp_path)
    for out, message in ((tmp_path, "is a folder"), ("/proc/out.png", "under /proc")):
        argv = {"fit": ["fit", store, "--out", out], "export": ["runs", "export", store, "--csv", out],
                "plot": ["plot", "runs", store, "--out", out], "pareto": ["pareto", store, "--out", out],
                "plan": ["plan", store, "--student", "1M", "--teachers", "pythia", "--runs-budget", "1",
                         "--out", out]}[verb]
        result = run_cli(*argv)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_export_and_plot_write_through_dev_null_and_a_symlink(tmp_path, run_cli):
    store = _runs(tmp_path)
    assert run_cli("runs", "export", store, "--csv", "/dev/null").returncode == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    target = tmp_path / "fig.png"
    (tmp_path / "link.png").symlink_to(target)
    assert run_cli("plot", "runs", store, "--out", tmp_path / "link.png").returncode == 0
    assert target.read_bytes()[:4] == b"\x89PNG" and (tmp_path / "link.png").is_symlink()
    assert run_cli("plot", "runs", store, "--out", "/dev/null").returncode == 0
