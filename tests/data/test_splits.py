import pandas as pd
import pytest

from steelinspect.data.master import build_master
from steelinspect.data.splits import frames_from_ids, make_splits, select_images, split_frame, split_ids
from steelinspect.errors import ConfigError


@pytest.fixture(scope="module")
def master(synth_dir):
    return build_master(synth_dir)


def test_full_protocol(master):
    binary = select_images(master, "binary", "full", 0, 0)
    assert len(binary) == len(master)
    multi = select_images(master, "multilabel", "full", 0, 0)
    assert multi.Defect.all() and len(multi) == int(master.Defect.sum())


def test_seed_protocol_counts(master):
    chosen = select_images(master, "multiclass", "seed", per_class=5, seed=1)
    assert (chosen.Defect_no == 1).all()
    counts = chosen.ClassIds.map(lambda ids: ids[0]).value_counts()
    singles = master[master.Defect_no == 1].ClassIds.map(lambda ids: ids[0]).value_counts()
    for c in (1, 2, 3, 4):
        assert counts.get(c, 0) == min(5, singles.get(c, 0))
    binary = select_images(master, "binary", "seed", per_class=5, seed=1)
    assert (~binary.Defect).sum() == min(len(chosen), int((~master.Defect).sum()))
    assert select_images(master, "binary", "seed", 5, 1).equals(binary)
    assert not select_images(master, "multiclass", "seed", 5, 2).ImageId.equals(chosen.ImageId) or len(chosen) < 6


def test_splits_are_deterministic_disjoint_and_stratified(master):
    frame = select_images(master, "binary", "full", 0, 0)
    a, b = split_frame(frame, seed=3), split_frame(frame, seed=3)
    assert split_ids(a) == split_ids(b)
    ids = [set(p.ImageId) for p in a.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert sum(map(len, ids)) == len(frame)
    clean_share = (frame.key == "0").mean()
    for part in a.values():
        assert abs((part.key == "0").mean() - clean_share) < 0.2
    assert split_ids(split_frame(frame, seed=4)) != split_ids(a)


def test_tiny_and_rare_groups_do_not_fail():
    frame = pd.DataFrame({"ImageId": [f"{i}.jpg" for i in range(7)], "key": ["0", "0", "0", "3", "3", "1 3", "2"]})
    parts = split_frame(frame, seed=0)
    assert sum(len(p) for p in parts.values()) == 7 and len(parts["train"]) >= 3


def test_stored_ids_round_trip_and_missing(master):
    parts = split_frame(select_images(master, "binary", "full", 0, 0), seed=0)
    back = frames_from_ids(master, split_ids(parts))
    assert back["val"].ImageId.tolist() == parts["val"].ImageId.tolist()
    with pytest.raises(ConfigError, match="not in the dataset"):
        frames_from_ids(master, {"train": ["nope.jpg"]})
    with pytest.raises(ConfigError, match="--protocol"):
        select_images(master, "binary", "other", 1, 0)


def test_full_protocol_puts_an_image_in_the_same_split_for_every_task(master):
    binary = split_ids(make_splits(master, "binary", "full", 0, seed=2))
    multi = split_ids(make_splits(master, "multilabel", "full", 0, seed=2))
    segment = split_ids(make_splits(master, "segment", "full", 0, seed=2))
    assert segment == binary and sum(map(len, binary.values())) == len(master)
    defects = set(master.ImageId[master.Defect])
    for name in ("train", "val", "test"):
        assert set(multi[name]) == set(binary[name]) & defects and multi[name]
    assert sum(map(len, multi.values())) == len(defects)
    # The seed protocol samples first, then splits its own sample.
    seed = make_splits(master, "multiclass", "seed", per_class=5, seed=2)
    assert split_ids(seed) == split_ids(split_frame(select_images(master, "multiclass", "seed", 5, 2), 2))
