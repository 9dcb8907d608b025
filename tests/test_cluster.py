"""jpeg-restore on a real dask.distributed cluster (two worker processes on the loopback interface)."""

import hashlib
import os
import signal

import pytest
from click.testing import CliRunner

from imaging import data_image
from napari_jpeg_restore.cli import main, restore_files
from napari_jpeg_restore.options import RestoreOptions

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c, distributed.Client(c) as client:
        yield c, client


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    photo = data_image("LIVE1/parrots.png")
    for i in range(6):
        photo.crop((40 * i, 0, 40 * i + 128, 96)).save(src / f"f{i}.jpg", quality=10 + 15 * i)
    return src


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_cluster_run_equals_a_one_process_run_byte_for_byte(cluster, folder, tmp_path, random_weights):
    c, _ = cluster
    args = [str(folder), "--model", str(random_weights["colour"]), "--gray-model", str(random_weights["gray"])]
    local = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "local")], catch_exceptions=False)
    remote = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "remote"), "--scheduler", c.scheduler_address],
                                catch_exceptions=False)
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert "6 restored" in remote.output
    assert digests(tmp_path / "remote") == digests(tmp_path / "local") and len(digests(tmp_path / "local")) == 6


def test_a_worker_killed_mid_run_loses_no_file(cluster, folder, tmp_path, random_weights):
    c, client = cluster
    out = tmp_path / "out"
    out.mkdir()
    pairs = [(p, out / f"{p.stem}.png") for p in sorted(folder.iterdir())]
    options = RestoreOptions(model=str(random_weights["colour"]), tile=64, overlap=16)  # many tiles: time to be killed
    outcomes = restore_files(pairs, options=options, client=client)
    first = next(outcomes)
    pids = client.run(os.getpid)
    assert len(list(out.glob("*.png"))) < len(pairs)  # still running ...
    os.kill(next(iter(pids.values())), signal.SIGKILL)  # ... when one of the two workers is killed
    rest = list(outcomes)
    assert [status for status, _ in [first, *rest]] == ["restored"] * 6
    assert sorted(p.name for p in out.iterdir()) == sorted(dst.name for _, dst in pairs)  # complete, no temporaries
    local = tmp_path / "local"
    local.mkdir()
    list(restore_files([(src, local / dst.name) for src, dst in pairs], options=options))
    assert digests(out) == digests(local)


def test_an_unreachable_scheduler_is_one_usage_error_before_any_work(folder, tmp_path, random_weights):
    result = CliRunner().invoke(main, [str(folder), "-o", str(tmp_path / "o"), "--model", str(random_weights["colour"]),
                                       "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2 and "--scheduler tcp://127.0.0.1:9: no scheduler answers there" in result.output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_every_worker_keeps_tensor_memory_in_the_heap(cluster, folder, tmp_path, random_weights):
    """dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_ set, which freezes glibc's mmap threshold
    and halves a restore's speed there (benchmarks/cluster_batch.py): a cluster run raises it on every
    worker, those of now and those that join later (a setup callback the scheduler keeps)."""
    from napari_jpeg_restore.cli import ALLOCATOR_PLUGIN, allocate_for_tensors

    _, client = cluster
    options = RestoreOptions(model=str(random_weights["colour"]))
    for run in range(2):
        list(restore_files([(folder / "f0.jpg", tmp_path / f"f0-{run}.png")], options=options, client=client))
    kept = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.worker_plugins))
    assert kept.count(ALLOCATOR_PLUGIN) == 1  # for workers that join later; once however many runs
    assert list(client.run(allocate_for_tensors).values()) == [True, True]  # glibc on every worker here
