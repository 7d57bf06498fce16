import numpy as np

from steelinspect.data.images import list_images, read_gray
from steelinspect.data.transforms import Preprocess
from steelinspect.infer.loader import iter_batches


def test_batches_in_order_with_every_preprocessing(synth_dir):
    paths = list_images(synth_dir / "train_images")[:11]
    a, b = Preprocess(64, 128), Preprocess(32, 64)
    batches = list(iter_batches(paths, [a, b, a], batch_size=4, workers=3, keep_originals=True))
    assert [len(x) for x in batches] == [4, 4, 3]
    assert [i for x in batches for i in x.image_ids] == [p.name for p in paths]
    first = batches[0]
    assert first.input(a).shape == (4, 1, 64, 128) and first.input(b).shape == (4, 1, 32, 64)
    assert first.input(a).dtype == np.float32 and len(first.inputs) == 2
    assert np.allclose(first.input(a)[1], a(read_gray(paths[1])))
    assert first.originals[0].shape == (256, 1600)


def test_bad_files_are_reported_and_skipped(synth_dir, tmp_path):
    good = list_images(synth_dir / "train_images")[:3]
    (tmp_path / "text.jpg").write_text("hello")
    data = good[0].read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 3])
    problems, seen = [], []
    paths = [good[0], tmp_path / "text.jpg", good[1], tmp_path / "half.jpg", good[2]]
    batches = list(iter_batches(paths, [Preprocess(32, 64)], batch_size=2, workers=2,
                                on_problem=problems.append, on_image=seen.append))
    assert [i for x in batches for i in x.image_ids] == [p.name for p in good]
    assert sorted(p.file.rsplit("/", 1)[-1] for p in problems) == ["half.jpg", "text.jpg"]
    assert all("not a readable image" in p.problem for p in problems)
    assert len(seen) == 5
