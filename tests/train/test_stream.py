"""Streaming shards into batches: disjoint replicas, equal batch counts, per-epoch shuffles, exact restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mammolibs.data.loader import SLOTS, StreamLoader
from mammolibs.data.standardize import standardize
from mammolibs.data.stream import ShardStream, replica_parts, split_shards, usable_count
from mammolibs.data.views import SegmentationView, View


class KeyView(View):
    """Yields a number per sample, so batches can be compared as sets of samples."""

    def __call__(self, sample, seed):
        return torch.tensor(int(sample.key.rsplit("-", 1)[-1][:8], 16)), torch.tensor(seed)


def _stream(data, view, rank, world, steps=None, shuffle=True, batch=3, seed=0):
    shards = split_shards(data, "train")
    return ShardStream(data, replica_parts(shards, view, rank, world), view, batch, seed, rank, shuffle, steps)


def _keys(stream, workers=0) -> list[list[int]]:
    return [batch[0].tolist() for batch in StreamLoader(stream, workers)]


def test_replicas_read_disjoint_samples_and_get_equal_batches(small_shards):
    shards = split_shards(small_shards, "train")
    view = KeyView()
    total = usable_count(shards, view)
    for world in (1, 2, 3):
        steps = total // (3 * world)
        streams = [_stream(small_shards, view, rank, world, steps) for rank in range(world)]
        batches = [_keys(s) for s in streams]
        assert [len(b) for b in batches] == [steps] * world
        assert all(len(batch) == 3 for replica in batches for batch in replica)
        owned = [set(k for batch in replica for k in batch) for replica in batches]
        for a in range(world):
            for b in range(a + 1, world):
                assert not owned[a] & owned[b]


def test_many_shards_are_split_between_replicas_whole(mias_subset, tmp_path):
    data = str(tmp_path / "shards")
    standardize([("mias", str(mias_subset))], data, image_size=32, samples_per_shard=2, progress=False)
    shards = split_shards(data, "train")
    assert len(shards) >= 2
    view = KeyView()
    parts = [replica_parts(shards, view, rank, 2) for rank in range(2)]
    names = [{p.name for p in replica} for replica in parts]
    assert names[0] and names[1] and not names[0] & names[1]
    assert names[0] | names[1] == {s["name"] for s in shards}
    steps = usable_count(shards, view) // 4  # batch 2 on each of 2 replicas
    counts = [len(_keys(ShardStream(data, p, view, 2, 0, rank, True, steps))) for rank, p in enumerate(parts)]
    assert counts == [steps, steps]


def test_order_is_reshuffled_per_epoch_and_fixed_by_seed_and_epoch(small_shards):
    view = KeyView()
    steps = usable_count(split_shards(small_shards, "train"), view) // 3
    first, again, other_seed = (_stream(small_shards, view, 0, 1, steps, seed=s) for s in (0, 0, 1))
    epochs = []
    for epoch in (0, 1):
        first.set_epoch(epoch)
        again.set_epoch(epoch)
        epochs.append(_keys(first))
        assert _keys(again) == epochs[-1]
    assert epochs[0] != epochs[1]
    for keys in epochs:  # an epoch visits no sample twice
        assert len(set(sum(keys, []))) == 3 * steps
    other_seed.set_epoch(0)
    assert _keys(other_seed) != epochs[0]


def test_worker_processes_and_restarts_give_the_same_batches(small_shards):
    view = KeyView()
    stream = _stream(small_shards, view, 0, 1)
    stream.set_epoch(3)
    whole = [(b[0].tolist(), b[1].tolist()) for b in StreamLoader(stream)]
    in_workers = [(b[0].tolist(), b[1].tolist()) for b in StreamLoader(stream, 2)]
    assert in_workers == whole
    stream.set_epoch(3, start=2)
    resumed = [(b[0].tolist(), b[1].tolist()) for b in StreamLoader(stream, 2)]
    assert resumed == whole[2:]


def test_evaluation_streams_cover_every_usable_sample_once_in_full_batches(small_shards):
    view = SegmentationView(augment="none")
    shards = split_shards(small_shards, "train")
    usable = usable_count(shards, view)
    stream = ShardStream(small_shards, replica_parts(shards, view, 0, 1), view, 4, 0, 0, shuffle=False)
    batches = list(StreamLoader(stream))
    assert len(batches) == -(-usable // 4)
    assert all(image.shape[0] == 4 for image, *_ in batches)
    assert len({image.flatten().sum().item() for image, *_ in batches for image in image}) >= usable - 1


def test_every_replica_gets_usable_samples_whenever_there_are_enough():
    def shard(name, usable):  # two samples, the first ``usable`` of them localized
        return {
            "name": name,
            "contents": [{"key": f"{name}-{i}", "label": "benign", "localized": i < usable} for i in range(2)],
        }

    view = SegmentationView()
    alternate = [shard("a", 2), shard("b", 0), shard("c", 2), shard("d", 0)]  # dealt whole: a+c vs b+d
    assert [[p.name for p in replica_parts(alternate, view, r, 2)] for r in range(2)] == [["a"], ["c"]]
    lonely = [shard("a", 2), shard("b", 0), shard("c", 0)]  # one shard holds every usable sample
    assert [[p.keys for p in replica_parts(lonely, view, r, 2)] for r in range(2)] == [[("a-0",)], [("a-1",)]]


def test_each_host_of_a_tpu_slice_reads_its_own_part_for_its_own_devices(small_shards):
    """A slice of two hosts with two devices each, as torch-xla's process index and count describe it:
    each host reads its own half of the shards, in batches for its two devices, for the same number of steps."""
    from mammolibs.data.shard_set import ShardSet
    from mammolibs.train.distributed import Runtime
    from mammolibs.train.engine import TrainConfig, data_streams
    from mammolibs.train.stages import STAGES

    config = TrainConfig(data=small_shards, out="unused", batch_size=2, patch_size=0)
    stage = STAGES["autoencoder"]

    data = ShardSet.open(small_shards)

    def streams(runtime: Runtime):
        return data_streams(stage, data, config, runtime)

    hosts = [Runtime(device=torch.device("cpu"), xla_devices=4, host=h, hosts=2) for h in (0, 1)]
    whole = Runtime(device=torch.device("cpu"), xla_devices=4)
    (train_0, val_0, usable), (train_1, val_1, _), (train_all, val_all, _) = map(streams, [*hosts, whole])
    for split_0, split_1, split_all in ((train_0, train_1, train_all), (val_0, val_1, val_all)):
        keys = [{(p.name, k) for p in stream.parts for k in p.keys} for stream in (split_0, split_1, split_all)]
        assert keys[0] and keys[1] and not keys[0] & keys[1] and keys[0] | keys[1] == keys[2]
    assert train_0.steps == train_1.steps == train_all.steps == usable // (2 * 4)
    assert (train_0.batch_size, train_all.batch_size) == (2 * 2, 2 * 4)  # a host's share of each global batch
    assert [h.is_main for h in hosts] == [True, False]
    assert hosts[1].data_part == (1, 2) and whole.data_part == (0, 1)


def test_an_epoch_reads_the_bytes_of_its_samples_once_whatever_the_workers(small_shards, counted_gcs):
    bucket, client, proxy = counted_gcs
    for path in sorted(Path(small_shards).iterdir()):
        client.bucket(bucket).blob(f"stream/{path.name}").upload_from_filename(str(path))
    data, view = f"gs://{bucket}/stream", KeyView()
    shards = split_shards(data, "train")
    batches = usable_count(shards, view) // 3
    local = _keys(_stream(small_shards, view, 0, 1, batches))
    stream = ShardStream(data, replica_parts(shards, view, 0, 1), view, 3, 0, 0, True, batches)
    sample_bytes = sum(part.entries[position]["span"][1] for batch in stream.batches() for part, position in batch)
    shard_bytes = sum(client.bucket(bucket).get_blob(f"stream/{s['name']}").size for s in shards)
    assert sample_bytes < shard_bytes
    for workers in (0, 1, 2, 3):
        proxy.received = 0
        assert _keys(stream, workers) == local
        # the samples' bytes once, and an HTTP response head per sample (the emulator's are under 200 bytes)
        assert sample_bytes <= proxy.received <= sample_bytes + 300 * batches * 3, (workers, proxy.received)


def test_two_nodes_with_workers_read_each_byte_once_per_epoch_between_them(small_shards, counted_gcs):
    """Two machines (ranks 0 and 1 of 2), each with its own DataLoader workers, on the same gs:// shards:
    they read disjoint samples, and together each sample's bytes once."""
    bucket, client, proxy = counted_gcs
    for path in sorted(Path(small_shards).iterdir()):
        client.bucket(bucket).blob(f"nodes/{path.name}").upload_from_filename(str(path))
    data, view = f"gs://{bucket}/nodes", KeyView()
    shards = split_shards(data, "train")
    steps = usable_count(shards, view) // 4  # a global batch of 4: 2 per machine
    nodes = [_stream(data, view, rank, 2, steps, batch=2) for rank in range(2)]
    sample_bytes = sum(
        part.entries[position]["span"][1] for node in nodes for batch in node.batches() for part, position in batch
    )
    shard_bytes = sum(client.bucket(bucket).get_blob(f"nodes/{s['name']}").size for s in shards)
    assert sample_bytes + 300 * 4 * steps < shard_bytes  # reading whole shards would fail the count below
    proxy.received = 0
    keys = [{key for batch in _keys(node, workers) for key in batch} for node, workers in zip(nodes, (2, 1))]
    assert keys[0] and keys[1] and not keys[0] & keys[1]  # no sample read by both machines
    assert len(keys[0] | keys[1]) == 4 * steps  # every step's global batch: distinct samples
    assert sample_bytes <= proxy.received <= sample_bytes + 300 * 4 * steps, proxy.received


def test_batches_from_worker_processes_are_the_same_and_stay_the_callers(busi_shards):
    """Workers hand batches over through a few reused shared slots: every batch kept by the caller must
    still hold its own pixels after many more have passed through the same slots."""
    view = SegmentationView(0, "none")
    shards = split_shards(busi_shards, "train")
    steps = usable_count(shards, view) // 2
    assert steps > 4 * SLOTS  # each worker's slots are reused several times
    stream = ShardStream(busi_shards, replica_parts(shards, view, 0, 1), view, 2, 0, 0, True, steps)
    alone = list(StreamLoader(stream))
    for workers in (1, 2, 3):
        kept = list(StreamLoader(stream, workers))
        assert len(kept) == len(alone) == steps
        for ours, theirs in zip(kept, alone):
            assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


class Ragged(View):
    def __call__(self, sample, seed):
        return (torch.zeros(seed % 3 + 1),)


def test_a_view_whose_samples_change_shape_is_a_clear_error_in_workers(small_shards):
    with pytest.raises(ValueError, match="samples of another shape or type than its first"):
        list(StreamLoader(_stream(small_shards, Ragged(), 0, 1, steps=4, batch=2), 1))
