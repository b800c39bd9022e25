"""Dataset readers: the real shared files, tiny fakes in each public layout, the cache, the split, torch sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import trimesh

import crosspoint.data.prepared as prepared
import crosspoint.geometry as geometry
from crosspoint.data import (
    MODELNET40_CLASSES,
    SCANOBJECTNN_CLASSES,
    PartDataset,
    PartSet,
    PointCloudSet,
    PointDataset,
    PretrainDataset,
    load_mesh_folder,
    load_modelnet40_h5,
    load_modelnet40_npz,
    load_modelnet40_txt,
    load_scanobjectnn_h5,
    load_shapenetpart_h5,
    load_shapenetpart_npz,
    load_shapenetpart_txt,
    shape_seed,
    train_val_split,
)
from crosspoint.data.modelnet import default_modelnet40_npz, read_modelnet40_npz
from crosspoint.data.shapenetpart import default_shapenetpart_npz, read_shapenetpart_npz
from crosspoint.data.shapenetpart_meta import PART_COUNTS, PART_OFFSETS, SYNSET_IDS
from crosspoint.render import ViewStore


def test_taxonomy_import_stays_light() -> None:
    """The gateway may read `shapenetpart_meta`; that must not drag in torch or h5py (training extras)."""
    code = (
        "import sys, crosspoint.data.shapenetpart_meta; print(sorted({'torch', 'h5py'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the real shared data -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modelnet_train() -> PointCloudSet:
    return load_modelnet40_npz(split="train")  # default cache: slow once per geometry version, then ~0.2 s


def _assert_model_frame(points: np.ndarray) -> None:
    assert points.dtype == np.float32
    norms = np.linalg.norm(points, axis=-1)
    assert np.allclose(norms.max(axis=-1), 1.0, atol=1e-5)
    assert np.abs(points.mean(axis=-2)).max() < 1e-5


def test_modelnet40_npz_real_counts(modelnet_train: PointCloudSet) -> None:
    test = load_modelnet40_npz(split="test")
    every = load_modelnet40_npz(split="all")
    assert (len(modelnet_train), len(test), len(every)) == (9843, 2336, 12179)
    assert modelnet_train.points.shape == (9843, 1024, 3) and modelnet_train.labels.dtype == np.int64
    assert modelnet_train.class_names == list(MODELNET40_CLASSES)
    assert set(np.unique(modelnet_train.labels)) == set(range(40)) == set(np.unique(test.labels))
    assert not set(modelnet_train.shape_ids) & set(test.shape_ids)
    assert len(set(every.shape_ids)) == 12179
    _assert_model_frame(modelnet_train.points[::97])


def test_modelnet40_npz_rows_are_geometry_prepare_of_the_distinct_points(
    modelnet_train: PointCloudSet,
) -> None:
    with np.load(default_modelnet40_npz()) as f:
        ids = list(f["shape_ids"])
        points, counts, kinds = f["points"], f["n_points"], f["source_kind"]
        tiled = int(np.flatnonzero((kinds == 2) & (f["split"] == 0))[0])
        full = int(np.flatnonzero((kinds == 0) & (f["split"] == 0))[0])
        for row in (tiled, full):
            sid = str(ids[row])
            expected, _ = geometry.prepare(
                points[row, : counts[row]].astype(np.float32),
                num_points=1024,
                up_axis="y",
                seed=shape_seed(sid),
            )
            got = modelnet_train.points[modelnet_train.shape_ids.index(sid)]
            assert np.array_equal(got, expected)  # the one preprocessing shared with serving
            assert len(np.unique(got, axis=0)) == 1024  # tiled duplicates never reach the model


def test_shapenetpart_npz_real() -> None:
    every = load_shapenetpart_npz(split="all")
    train, test = load_shapenetpart_npz(split="train"), load_shapenetpart_npz(split="test")
    # The file holds 16 train / 0 val / 4 test by the official lists (its README's total row says 15/5).
    assert (len(every), len(train), len(test), len(load_shapenetpart_npz(split="val"))) == (20, 16, 4, 0)
    assert every.points.shape == (20, 2048, 3) and every.part_labels.dtype == np.int64
    assert sorted(set(every.categories.tolist())) == list(range(16))
    _assert_model_frame(every.points)
    for labels, cat in zip(every.part_labels, every.categories, strict=True):
        assert labels.min() >= PART_OFFSETS[cat] and labels.max() < PART_OFFSETS[cat] + PART_COUNTS[cat]
    with np.load(prepared.shared_data_dir() / "shapenetpart_partial" / "shapenetpart_partial_2048.npz") as f:
        for i in range(20):  # 2048 of 2048 points: the same labels, reordered with their points
            assert np.array_equal(
                np.sort(every.part_labels[i]), np.sort(f["part_labels"][i].astype(np.int64))
            )


def test_raw_readers_give_the_files_rows_unprepared() -> None:
    """What parity and the benchmarks read: the stored points (distinct ones), not prepared."""
    test = read_modelnet40_npz(split="test")
    with np.load(default_modelnet40_npz()) as f:
        rows = np.flatnonzero(f["split"] == 1)
        assert len(test) == len(rows) == 2336 and test.class_names == list(MODELNET40_CLASSES)
        for j in (0, 1000, len(rows) - 1):
            i = rows[j]
            assert test.shape_ids[j] == str(f["shape_ids"][i]) and test.labels[j] == f["labels"][i]
            assert np.array_equal(test.clouds[j], f["points"][i, : f["n_points"][i]].astype(np.float32))
    parts = read_shapenetpart_npz(split="all")
    with np.load(default_shapenetpart_npz()) as f:
        assert parts.shape_ids == [str(s) for s in f["shape_ids"]] and parts.part_labels is not None
        assert np.array_equal(np.stack(parts.clouds), f["points"].astype(np.float32))
        assert np.array_equal(parts.labels, f["category"]) and parts.class_names == list(f["category_names"])
        # parity takes each category's part range from the taxonomy module: the file agrees with it
        assert list(f["part_offset"]) == list(PART_OFFSETS) and list(f["part_count"]) == list(PART_COUNTS)
    assert [len(p) for p in parts.part_labels] == [2048] * 20


# --- cache -------------------------------------------------------------------------------------------


def _fake_modelnet_npz(path: Path, rows: int = 6) -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(rows, 64, 3)).astype(np.float16)
    pts[1, 32:] = pts[1, :32]  # a "tiled" row: only the first 32 points are distinct
    np.savez_compressed(
        path,
        points=pts,
        labels=np.arange(rows, dtype=np.int16) % 2,
        split=np.array([0, 0, 0, 1, 1, 0], np.uint8)[:rows],
        shape_ids=np.array([f"thing_{i:04d}" for i in range(rows)]),
        class_names=np.array(["a", "b"]),
        n_points=np.array([64, 32, 64, 64, 64, 64], np.int16)[:rows],
    )


def test_npz_loader_caches_and_notices_a_changed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    npz = tmp_path / "mn.npz"
    _fake_modelnet_npz(npz)
    calls = []
    real = geometry.prepare

    def counting_prepare(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(geometry, "prepare", counting_prepare)
    first = load_modelnet40_npz(npz, split="train", num_points=32, cache_dir=tmp_path / "cache")
    assert len(calls) == 6 and len(first) == 4 and first.points.shape == (4, 32, 3)
    second = load_modelnet40_npz(npz, split="all", num_points=32, cache_dir=tmp_path / "cache")
    assert len(calls) == 6  # cache hit: nothing prepared again
    assert np.array_equal(second.points[[0, 1, 2, 5]], first.points)
    load_modelnet40_npz(npz, split="all", num_points=16, cache_dir=tmp_path / "cache")
    assert len(calls) == 12  # other settings, other cache entry
    _fake_modelnet_npz(npz, rows=5)
    assert len(load_modelnet40_npz(npz, split="all", num_points=32, cache_dir=tmp_path / "cache")) == 5


# --- split and subsets ----------------------------------------------------------------------------------


def test_train_val_split_is_stratified_deterministic_and_disjoint() -> None:
    labels = np.repeat(np.arange(5), [100, 50, 20, 3, 1])
    tr, va = train_val_split(labels, val_fraction=0.1, seed=0)
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(labels)))
    assert not set(tr) & set(va)
    assert np.bincount(labels[va], minlength=5).tolist() == [10, 5, 2, 1, 0]  # the singleton stays in train
    tr2, va2 = train_val_split(labels, val_fraction=0.1, seed=0)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert not np.array_equal(va, train_val_split(labels, val_fraction=0.1, seed=1)[1])


def test_train_val_split_on_real_modelnet(modelnet_train: PointCloudSet) -> None:
    tr, va = train_val_split(modelnet_train.labels, val_fraction=0.1, seed=0)
    assert len(tr) + len(va) == 9843 and 950 <= len(va) <= 1010
    assert set(np.unique(modelnet_train.labels[va])) == set(range(40))
    sub = modelnet_train.subset(va)
    assert len(sub) == len(va) and sub.shape_ids[0] == modelnet_train.shape_ids[va[0]]
    mask = np.zeros(len(modelnet_train), bool)
    mask[va] = True
    assert modelnet_train.subset(mask).shape_ids == sub.shape_ids


# --- public layouts, built tiny in tmp_path ---------------------------------------------------------------


def _blob(rng: np.random.Generator, n: int, stretch: float = 1.0) -> np.ndarray:
    return (rng.normal(size=(n, 3)) * [stretch, 1.0, 0.5] + rng.normal(size=3)).astype(np.float32)


def test_modelnet40_h5_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sizes = {"ply_data_train0.h5": 3, "ply_data_train1.h5": 2, "ply_data_test0.h5": 2}
    for name, b in sizes.items():
        with h5py.File(tmp_path / name, "w") as h5:
            h5["data"] = np.stack([_blob(rng, 256) for _ in range(b)])
            h5["label"] = np.arange(b, dtype=np.uint8).reshape(b, 1) + (10 if "test" in name else 0)
    (tmp_path / "ply_data_train_0_id2file.json").write_text(
        json.dumps([f"chair/chair_{i:04d}.ply" for i in range(3)])
    )
    (tmp_path / "shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    train = load_modelnet40_h5(tmp_path, "train", num_points=128, cache_dir=tmp_path / "c")
    assert train.points.shape == (5, 128, 3) and train.labels.tolist() == [0, 1, 2, 0, 1]
    assert train.shape_ids[:3] == ["chair_0000", "chair_0001", "chair_0002"]
    assert train.shape_ids[3] == "ply_data_train1_0000" and train.class_names == list(MODELNET40_CLASSES)
    _assert_model_frame(train.points)
    assert len(load_modelnet40_h5(tmp_path, "all", num_points=128, cache_dir=tmp_path / "c")) == 7
    assert load_modelnet40_h5(tmp_path, "test", num_points=128, cache_dir=tmp_path / "c").labels.tolist() == [
        10,
        11,
    ]


def test_modelnet40_txt_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    (tmp_path / "modelnet40_shape_names.txt").write_text("\n".join(MODELNET40_CLASSES) + "\n")
    lists = {"train": ["airplane_0001", "night_stand_0001"], "test": ["night_stand_0100"]}
    for split, ids in lists.items():
        (tmp_path / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        for sid in ids:
            cls = sid.rsplit("_", 1)[0]
            (tmp_path / cls).mkdir(exist_ok=True)
            table = np.concatenate([_blob(rng, 300), rng.normal(size=(300, 3))], axis=1)  # x,y,z,nx,ny,nz
            (tmp_path / cls / f"{sid}.txt").write_text(
                "\n".join(",".join(f"{v:.6f}" for v in row) for row in table)
            )
    train = load_modelnet40_txt(tmp_path, "train", num_points=64, cache_dir=tmp_path / "c")
    night_stand = MODELNET40_CLASSES.index("night_stand")
    assert train.shape_ids == lists["train"] and train.labels.tolist() == [0, night_stand]
    assert train.points.shape == (2, 64, 3)
    _assert_model_frame(train.points)
    assert (
        load_modelnet40_txt(tmp_path, "all", num_points=64, cache_dir=tmp_path / "c").labels.tolist()[-1]
        == night_stand
    )


def test_scanobjectnn_h5_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    path = tmp_path / "main_split" / "test_objectdataset.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as h5:
        h5["data"] = np.stack([_blob(rng, 512) for _ in range(4)])
        h5["label"] = np.array([0, 14, 3, 3], dtype=np.int64)
    data = load_scanobjectnn_h5(path, num_points=256, cache_dir=tmp_path / "c")
    assert data.points.shape == (4, 256, 3) and data.labels.tolist() == [0, 14, 3, 3]
    assert data.class_names == list(SCANOBJECTNN_CLASSES) and len(data.class_names) == 15
    assert data.shape_ids[1] == "test_objectdataset_00001"
    _assert_model_frame(data.points)


def _part_cloud(rng: np.random.Generator, n: int, category: int) -> tuple[np.ndarray, np.ndarray]:
    """Points whose part label is decided by position (y above 0 -> second part): a label that travels
    with the wrong point shows up as a label on the wrong side."""
    pts = _blob(rng, n)
    pts[:, 1] = rng.uniform(-1, 1, n)
    return pts, PART_OFFSETS[category] + (pts[:, 1] > 0).astype(np.int64)


def _assert_labels_follow_points(parts: PartSet) -> None:
    # prepare centres on the mean, so compare with the side of the (shifted) split plane per shape
    for pts, labels, cat in zip(parts.points, parts.part_labels, parts.categories, strict=True):
        upper = labels == PART_OFFSETS[cat] + 1
        assert pts[upper, 1].min() > pts[~upper, 1].max()


def test_shapenetpart_h5_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    for name, cats in {
        "ply_data_train0.h5": [0, 4],
        "ply_data_val0.h5": [15],
        "ply_data_test0.h5": [9],
    }.items():
        clouds = [_part_cloud(rng, 600, c) for c in cats]
        with h5py.File(tmp_path / name, "w") as h5:
            h5["data"] = np.stack([c[0] for c in clouds])
            h5["label"] = np.array(cats, np.uint8).reshape(-1, 1)
            h5["pid"] = np.stack([c[1] for c in clouds]).astype(np.uint8)
    trainval = load_shapenetpart_h5(tmp_path, "trainval", num_points=256, cache_dir=tmp_path / "c")
    assert trainval.categories.tolist() == [0, 4, 15] and trainval.part_labels.shape == (3, 256)
    assert trainval.split == "trainval"
    _assert_model_frame(trainval.points)
    _assert_labels_follow_points(trainval)
    assert load_shapenetpart_h5(
        tmp_path, "test", num_points=256, cache_dir=tmp_path / "c"
    ).categories.tolist() == [9]


def test_shapenetpart_txt_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, (split, cat) in enumerate([("train", 4), ("train", 0), ("test", 15)]):
        synset, sid = SYNSET_IDS[cat], f"shape{i:02d}"
        (tmp_path / synset).mkdir(exist_ok=True)
        pts, labels = _part_cloud(rng, 700, cat)
        table = np.concatenate([pts, rng.normal(size=(700, 3)), labels[:, None]], axis=1)
        np.savetxt(tmp_path / synset / f"{sid}.txt", table, fmt="%.6f")
        lists[split].append(f"shape_data/{synset}/{sid}")
    (tmp_path / "train_test_split").mkdir()
    for split, entries in lists.items():
        (tmp_path / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    train = load_shapenetpart_txt(tmp_path, "train", num_points=512, cache_dir=tmp_path / "c")
    assert train.shape_ids == [f"{SYNSET_IDS[4]}/shape00", f"{SYNSET_IDS[0]}/shape01"]
    assert train.categories.tolist() == [4, 0] and train.points.shape == (2, 512, 3)
    _assert_labels_follow_points(train)
    assert len(load_shapenetpart_txt(tmp_path, "all", num_points=512, cache_dir=tmp_path / "c")) == 3


def test_mesh_folder_layouts(tmp_path: Path) -> None:
    split_root, flat_root = tmp_path / "split", tmp_path / "flat"
    shapes = {"box": trimesh.creation.box((1, 2, 0.5)), "cone": trimesh.creation.cone(0.5, 1.5)}
    for cls, mesh in shapes.items():
        for split in ("train", "test"):
            (split_root / cls / split).mkdir(parents=True)
            mesh.export(split_root / cls / split / f"{cls}_0001.off")
        (flat_root / cls).mkdir(parents=True)
        mesh.export(flat_root / cls / f"{cls}_a.obj")
    train = load_mesh_folder(split_root, num_points=128, split="train", cache_dir=tmp_path / "c")
    assert train.class_names == ["box", "cone"] and train.labels.tolist() == [0, 1]
    assert train.shape_ids == ["box/train/box_0001", "cone/train/cone_0001"]
    _assert_model_frame(train.points)
    assert len(load_mesh_folder(split_root, num_points=128, split="all", cache_dir=tmp_path / "c")) == 4
    flat = load_mesh_folder(flat_root, num_points=128, cache_dir=tmp_path / "c")
    assert flat.shape_ids == ["box/box_a", "cone/cone_a"]
    with pytest.raises(ValueError, match="split='all'"):
        load_mesh_folder(flat_root, num_points=128, split="train", cache_dir=tmp_path / "c")
    (flat_root / "cone" / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(ValueError, match=r"broken\.off"):
        load_mesh_folder(flat_root, num_points=128, cache_dir=tmp_path / "c")
    assert len(load_mesh_folder(flat_root, num_points=128, cache_dir=tmp_path / "c", on_error="skip")) == 2


# --- torch datasets --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set(modelnet_train: PointCloudSet) -> PointCloudSet:
    return modelnet_train.subset([0, 1000, 2000, 3000])


def test_point_dataset_items(small_set: PointCloudSet) -> None:
    plain = PointDataset(small_set)[1]
    assert plain["points"].shape == (1024, 3) and plain["points"].dtype == torch.float32
    assert plain["label"].dtype == torch.int64 and int(plain["label"]) == small_set.labels[1]
    assert torch.equal(plain["points"], torch.from_numpy(small_set.points[1]))
    aug = PointDataset(small_set, augment=True, seed=3)
    a = aug[1]["points"]
    assert torch.equal(a, aug[1]["points"]) and not torch.equal(a, plain["points"])
    aug.set_epoch(1)
    assert not torch.equal(a, aug[1]["points"])
    # Turns come before the scale/shift: the turned item is a different cloud of the same shape.
    turned = PointDataset(small_set, augment=True, seed=3, turns=True)[1]["points"]
    assert turned.shape == a.shape and not torch.equal(turned, a)


def test_part_dataset_shuffle_keeps_point_label_pairs() -> None:
    parts = load_shapenetpart_npz(split="train")
    plain, shuffled = PartDataset(parts)[4], PartDataset(parts, augment=True)[4]
    assert plain["points"].shape == (2048, 3) and plain["part_labels"].shape == (2048,)
    assert plain["category"].dtype == torch.int64 and int(plain["category"]) == parts.categories[4]
    assert not torch.equal(plain["points"], shuffled["points"])
    order = {
        tuple(p): int(lab)
        for p, lab in zip(plain["points"].tolist(), plain["part_labels"].tolist(), strict=True)
    }
    assert all(
        order[tuple(p)] == lab
        for p, lab in zip(shuffled["points"].tolist(), shuffled["part_labels"].tolist(), strict=True)
    )


def test_pretrain_dataset_items(tmp_path: Path, small_set: PointCloudSet) -> None:
    store = ViewStore(tmp_path, size=64, views_per_object=3)
    store.prefill(small_set)
    ds = PretrainDataset(small_set, store, num_points=512, image_size=64, seed=0)
    item = ds[2]
    assert item["view1"].shape == (512, 3) and item["view2"].shape == (512, 3)
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert int(item["label"]) == small_set.labels[2]
    assert not torch.equal(item["view1"], item["view2"])  # two independent augmentations
    again = ds[2]
    assert all(torch.equal(item[k], again[k]) for k in item)
    ds.set_epoch(1)
    assert not torch.equal(item["view1"], ds[2]["view1"])
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["view1"].shape == (4, 512, 3) and batch["image"].shape == (4, 3, 64, 64)
    with pytest.raises(ValueError):
        PretrainDataset(small_set, store, num_points=2048)


def test_pretrain_items_do_not_depend_on_worker_processes(tmp_path: Path, small_set: PointCloudSet) -> None:
    store = ViewStore(tmp_path, size=32, views_per_object=2, chunk_size=2)
    store.prefill(small_set)
    ds = PretrainDataset(small_set, store, num_points=256, image_size=32, seed=1)
    ds[0]  # the parent opens chunk files before forking: workers must not share those handles

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        return list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers))

    for one, many in zip(batches(0), batches(2), strict=True):
        assert all(torch.equal(one[k], many[k]) for k in one)
