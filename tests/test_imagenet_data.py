"""ImageNet-style data without TensorFlow: the folder layouts edgecnn reads (class folders,
WordNet-id folders, flat {wnid}_*.jpg files with a synsets.txt, unlabelled images), how their
classes map onto a model's outputs, the shipped class lists, and photos read with each
network's evaluation crop. Photos: real ones that ship in packages (scikit-image)."""
import os
import shutil

import numpy as np
import pytest
from conftest import DEVICE_FIXTURES, device_fixture
from PIL import Image

from edgecnn.data.folder import load_image
from edgecnn.data.imagenet import imagenet_classes, imagenet_wnids, wnid_index
from edgecnn.data.labelled import label_space, load_images, read_synsets, scan, split, subset
from edgecnn.errors import EdgecnnError

pytestmark = pytest.mark.device  # needs only the light install (make test-arm64)

if DEVICE_FIXTURES:  # the light install has no scikit-image: its photos, copied beforehand
    SKIMAGE_DATA = device_fixture("skimage_data")
else:
    skimage = pytest.importorskip("skimage")
    SKIMAGE_DATA = os.path.join(os.path.dirname(skimage.__file__), "data")
# photo -> its ImageNet-1k class (index)
PHOTOS = {"chelsea.png": 281, "coffee.png": 504, "motorcycle_left.png": 665,
          "rocket.jpg": 812, "astronaut.png": 834}


def _wnid(index):
    return imagenet_wnids()[index]


def _synsets_text(classes=None):
    classes = range(1000) if classes is None else classes
    return "".join(f"{_wnid(i)} {imagenet_classes()[i]}\n" for i in classes)


def flat_folder(root, synsets=True):
    """The ImageNet sample's layout: {wnid}_{name}.jpg files, a synsets.txt beside them."""
    root.mkdir(parents=True, exist_ok=True)
    for photo, index in PHOTOS.items():
        name = imagenet_classes()[index].replace(" ", "_")
        shutil.copy(os.path.join(SKIMAGE_DATA, photo),
                    root / f"{_wnid(index)}_{name}{os.path.splitext(photo)[1]}")
    if synsets:
        (root / "synsets.txt").write_text(_synsets_text())
    return root


def wnid_folders(root):
    """ILSVRC's validation layout: one folder per WordNet id."""
    for photo, index in PHOTOS.items():
        (root / _wnid(index)).mkdir(parents=True)
        shutil.copy(os.path.join(SKIMAGE_DATA, photo), root / _wnid(index) / photo)
    return root


def test_shipped_class_lists_are_the_standard_order():
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids == sorted(wnids) and len(set(wnids)) == 1000
    assert wnids[0] == "n01440764" and imagenet_classes()[0] == "tench"
    assert wnid_index()["n02123045"] == 281 and imagenet_classes()[281] == "tabby"
    assert wnids[999] == "n15075141" and imagenet_classes()[999] == "toilet tissue"


def test_flat_imagenet_folder_maps_through_its_synsets(tmp_path):
    data = scan(str(flat_folder(tmp_path / "flat")))
    assert data.layout == "imagenet flat" and len(data.files) == len(PHOTOS)
    assert sorted(data.classes) == sorted(_wnid(i) for i in PHOTOS.values())
    space = label_space(data, 1000)  # auto: the folder's synsets.txt
    assert space.how.startswith("class list") and space.names[281] == "tabby"
    by_file = {os.path.basename(f): space.index[k] for f, k in zip(data.files, data.keys)}
    assert sorted(by_file.values()) == sorted(PHOTOS.values())
    assert label_space(data, 1000, "imagenet").index == space.index


def test_wnid_folders_and_flat_files_without_synsets_map_onto_imagenet(tmp_path):
    folders = scan(str(wnid_folders(tmp_path / "val")))
    assert folders.layout == "wnid folders"
    flat = scan(str(flat_folder(tmp_path / "flat", synsets=False)))
    assert flat.layout == "imagenet flat" and flat.synsets is None
    for data in (folders, flat):
        space = label_space(data, 1000)  # auto: WordNet ids and 1000 outputs
        assert space.how == "ImageNet-1k WordNet ids"
        assert sorted(space.index.values()) == sorted(PHOTOS.values())
    # the card's ImageNet class names do not stop the WordNet mapping
    assert label_space(folders, 1000, model_labels=imagenet_classes()).index == \
        label_space(folders, 1000, "imagenet").index


def test_a_class_list_file_orders_the_outputs(tmp_path):
    data = scan(str(wnid_folders(tmp_path / "val")))
    order = sorted(PHOTOS.values(), reverse=True)
    listing = tmp_path / "classes.txt"
    listing.write_text("# my five classes\n" + _synsets_text(order))
    space = label_space(data, 5, str(listing))
    assert [space.index[_wnid(i)] for i in order] == [0, 1, 2, 3, 4]
    assert space.names == [imagenet_classes()[i] for i in order]
    assert read_synsets(str(listing))[0] == (_wnid(order[0]), imagenet_classes()[order[0]])


def test_class_folders_keep_their_sorted_order_or_the_card_labels(tmp_path):
    for name in ("dog", "cat"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        shutil.copy(os.path.join(SKIMAGE_DATA, "chelsea.png"), tmp_path / "pets" / name)
    data = scan(str(tmp_path / "pets"))
    assert data.layout == "class folders"
    assert label_space(data, 2).index == {"cat": 0, "dog": 1}
    assert label_space(data, 3, model_labels=["bird", "dog", "cat"]).index == \
        {"cat": 2, "dog": 1}


@pytest.mark.parametrize("case, fragments", [
    ("imagenet_wrong_outputs", ("1000 classes", "10 outputs")),
    ("imagenet_not_wnids", ("not ImageNet-1k WordNet ids", "cat")),
    ("missing_list", ("no such file",)),
    ("list_wrong_length", ("lists 1000 classes", "5 outputs")),
    ("unlabelled", ("no classes",)),
    ("unknown_prefix", ("not in", "synsets.txt")),
    ("count_mismatch", ("2 classes", "7 outputs")),
])
def test_label_mistakes_say_what_would_be_right(tmp_path, case, fragments):
    def pets():
        for name in ("dog", "cat"):
            (tmp_path / "pets" / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(os.path.join(SKIMAGE_DATA, "chelsea.png"), tmp_path / "pets" / name)
        return scan(str(tmp_path / "pets"))

    with pytest.raises(EdgecnnError) as err:
        if case == "imagenet_wrong_outputs":
            label_space(scan(str(wnid_folders(tmp_path / "v"))), 10, "imagenet")
        elif case == "imagenet_not_wnids":
            label_space(pets(), 1000, "imagenet")
        elif case == "missing_list":
            label_space(pets(), 2, str(tmp_path / "nope.txt"))
        elif case == "list_wrong_length":
            label_space(scan(str(flat_folder(tmp_path / "f"))), 5)
        elif case == "unlabelled":
            (tmp_path / "u").mkdir()
            shutil.copy(os.path.join(SKIMAGE_DATA, "coffee.png"), tmp_path / "u")
            data = scan(str(tmp_path / "u"))
            assert data.layout == "unlabelled"
            label_space(data, 1000)
        elif case == "unknown_prefix":
            folder = flat_folder(tmp_path / "f")
            shutil.copy(os.path.join(SKIMAGE_DATA, "coffee.png"), folder / "mug.png")
            scan(str(folder))
        else:
            label_space(pets(), 7)
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_folds_are_disjoint_and_cover_the_data(tmp_path):
    data = scan(str(flat_folder(tmp_path / "flat")))
    folds = split(data, 2, seed=3)
    assert sorted(folds[0] + folds[1]) == list(range(len(data.files)))
    assert abs(len(folds[0]) - len(folds[1])) <= 1
    part = subset(data, folds[1])
    assert part.files == [data.files[i] for i in folds[1]] and part.layout == data.layout


def test_evaluation_crop_is_resize_then_center_crop():
    """crop 0.875 at 224 reads as torchvision's Resize(256) + CenterCrop(224); crop 1.0 as
    edgecnn's training pipeline (the shorter side)."""
    path = os.path.join(SKIMAGE_DATA, "chelsea.png")  # 451 x 300
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        resized = im.resize((round(w * 256 / h), 256), Image.BICUBIC)
        left, top = (resized.size[0] - 224) // 2, (256 - 224) // 2
        expected = np.asarray(resized.crop((left, top, left + 224, top + 224)))
    got = load_image(path, 224, 0.875, "bicubic")
    assert got.shape == (224, 224, 3) and np.array_equal(got, expected)
    whole = load_image(path, 224)
    assert not np.array_equal(whole, got)
    # the crop shows a smaller part of the photo: its content is magnified
    assert np.array_equal(load_image(path, 224, 1.0, "bilinear"), whole)
    with pytest.raises(EdgecnnError, match="crop fraction"):
        load_image(path, 224, 1.5)
    with pytest.raises(EdgecnnError, match="resize filter"):
        load_image(path, 224, 0.875, "lanczos")


def test_load_images_labels_are_output_indices(tmp_path):
    data = scan(str(flat_folder(tmp_path / "flat")))
    space = label_space(data, 1000, "imagenet")
    loaded = load_images(data, 32, space=space, crop=0.875)
    assert loaded.images.shape == (len(PHOTOS), 32, 32, 3) and loaded.images.dtype == np.uint8
    assert sorted(loaded.labels.tolist()) == sorted(PHOTOS.values())
    two = load_images(data, 32, space=space, limit=2, seed=1)
    assert len(two.images) == 2 and set(two.files) <= set(data.files)
