"""K stratified folds (data/folds.py): a partition of the non-test images, fixed by the seed, one fold per image
for every task under the full protocol."""

import pytest

from steelinspect.data.folds import make_fold_splits
from steelinspect.data.master import build_master
from steelinspect.data.splits import make_splits
from steelinspect.errors import ConfigError


@pytest.fixture(scope="module")
def master(synth_dir):
    return build_master(synth_dir)


@pytest.mark.parametrize("task,protocol", [("binary", "full"), ("multilabel", "full"), ("multiclass", "seed"),
                                           ("segment", "full")])
def test_folds_partition_the_non_test_images(master, task, protocol):
    plain = make_splits(master, task, protocol, 6, seed=3)
    folds = [make_fold_splits(master, task, protocol, 6, seed=3, folds=4, fold=k) for k in (1, 2, 3, 4)]
    non_test = set(plain["train"].ImageId) | set(plain["val"].ImageId)
    vals = [set(f["val"].ImageId) for f in folds]
    assert set().union(*vals) == non_test and sum(map(len, vals)) == len(non_test)  # each image in one fold
    for f, val in zip(folds, vals):
        assert set(f["test"].ImageId) == set(plain["test"].ImageId)  # the same held-out test as a plain run
        assert set(f["train"].ImageId) == non_test - val
        assert 0.5 * len(non_test) / 4 <= len(val) <= 1.5 * len(non_test) / 4 + 1  # balanced
    again = make_fold_splits(master, task, protocol, 6, seed=3, folds=4, fold=2)
    assert again["val"].ImageId.tolist() == folds[1]["val"].ImageId.tolist()  # fixed by the seed
    other = make_fold_splits(master, task, protocol, 6, seed=4, folds=4, fold=2)
    assert other["val"].ImageId.tolist() != folds[1]["val"].ImageId.tolist()


def test_under_full_an_image_has_one_fold_for_every_task(master):
    for k in (1, 2, 3):
        binary = make_fold_splits(master, "binary", "full", 0, seed=0, folds=3, fold=k)
        multi = make_fold_splits(master, "multilabel", "full", 0, seed=0, folds=3, fold=k)
        assert set(multi["val"].ImageId) == set(binary["val"].ImageId) & set(master[master.Defect].ImageId)


def test_folds_are_stratified_on_the_label_combination(master):
    folds = [make_fold_splits(master, "binary", "full", 0, seed=0, folds=3, fold=k)["val"] for k in (1, 2, 3)]
    clean = [int((~f.Defect).sum()) for f in folds]
    assert max(clean) - min(clean) <= 1


def test_too_many_folds_are_refused(master):
    with pytest.raises(ConfigError, match="--folds 500"):
        make_fold_splits(master, "binary", "full", 0, seed=0, folds=500, fold=1)
    with pytest.raises(ConfigError, match="fold 4 is not one of 1..3"):
        make_fold_splits(master, "binary", "full", 0, seed=0, folds=3, fold=4)


def test_the_config_refuses_bad_fold_settings(tmp_path):
    from steelinspect.runs.config import TrainConfig

    for folds, fold, says in ((0, 0, "--folds must be 1"), (1, 1, "--folds must be 1"), (3, 4, "fold 4")):
        with pytest.raises(ConfigError, match=says):
            TrainConfig(task="binary", data=tmp_path, out=tmp_path / "r", folds=folds, fold=fold).validate()
    TrainConfig(task="binary", data=tmp_path, out=tmp_path / "r", folds=5).validate()
    saved = TrainConfig.from_dict({"task": "binary", "data": "d", "out": "o"})  # a config.json from before folds
    assert saved.folds == 1 and saved.fold == 0
