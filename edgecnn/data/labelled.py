"""Image folders as datasets: which files, which class each holds, and how the classes map
onto a model's outputs. numpy and Pillow only (the light install's ``eval`` uses it).

Layouts, recognized by :func:`scan`:

- **class folders**: one sub-folder per class (``cats/``, ``dogs/``), or the ImageNet
  validation layout, one sub-folder per WordNet id (``n01440764/``);
- **ImageNet flat**: the images in the folder itself, named ``{wnid}_*.jpg`` (the class is
  the WordNet id before the first underscore), with a ``synsets.txt`` beside them giving
  the class index of every wnid (line number, 0-based; a name may follow the id);
- **unlabelled**: images in the folder itself with nothing saying their class (fine for
  calibration and distillation, not for accuracy).

:func:`label_space` maps the classes onto a model's outputs: ``"imagenet"`` (WordNet ids
onto the 1000 ImageNet-1k outputs, in the standard order shipped with edgecnn), a
synsets-style text file, the model card's labels by name, or the sorted folder names.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import EdgecnnError, EdgecnnWarning
from .folder import IMAGE_EXTENSIONS, ImageFolder, load_image
from .imagenet import imagenet_classes, is_wnid, wnid_index

SYNSETS = "synsets.txt"
LABEL_MODES = ("auto", "imagenet")  # or a file path


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


@dataclass
class Dataset:
    """A scanned image folder. ``keys[i]``: the class key of ``files[i]`` (its folder's name
    or its WordNet id; None when unlabelled). ``synsets``: (key, name) pairs in class-index
    order when the folder has a ``synsets.txt``."""

    root: str
    files: list
    keys: list
    layout: str
    synsets: list | None = None

    @property
    def labelled(self) -> bool:
        return self.layout != "unlabelled"

    @property
    def classes(self) -> list[str]:
        """The class keys present, sorted."""
        return sorted({k for k in self.keys if k is not None})

    def describe(self) -> str:
        if not self.labelled:
            return f"{len(self.files)} unlabelled images"
        return f"{len(self.files)} images of {len(self.classes)} classes ({self.layout})"


def read_synsets(path: str) -> list[tuple[str, str]]:
    """A synsets-style class list: one class per line, its key first (a WordNet id or any
    name without spaces), optionally followed by a display name; line N is class N."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgecnnError(f"cannot read the class list {path}: {exc}; give a text file with "
                           f"one class per line (key, then an optional name)") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        key, _, name = line.partition(" ")
        pairs.append((key, name.strip() or key))
    if not pairs:
        raise EdgecnnError(f"the class list {path} is empty; give one class per line")
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise EdgecnnError(f"the class list {path} names {key} twice; each class once, "
                               f"in output order")
        seen.add(key)
    return pairs


def scan(root: str) -> Dataset:
    """The images of ``root`` and their classes (see the module docstring)."""
    if not os.path.isdir(root):
        raise EdgecnnError(f"data folder {root} does not exist; give a folder with one "
                           f"sub-folder of images per class, or ImageNet-style "
                           f"{{wnid}}_*.jpg files with a synsets.txt")
    entries = sorted(os.listdir(root))
    folders = [d for d in entries if os.path.isdir(os.path.join(root, d))
               and not d.startswith(".")]
    synsets_path = os.path.join(root, SYNSETS)
    synsets = read_synsets(synsets_path) if os.path.isfile(synsets_path) else None
    files, keys = [], []
    for name in folders:
        for f in sorted(os.listdir(os.path.join(root, name))):
            if _is_image(f):
                files.append(os.path.join(root, name, f))
                keys.append(name)
    if files:
        layout = "wnid folders" if all(is_wnid(k) for k in keys) else "class folders"
        return Dataset(root, files, keys, layout, synsets)
    flat = [f for f in entries if _is_image(f) and os.path.isfile(os.path.join(root, f))]
    if not flat:
        raise EdgecnnError(f"data folder {root} has no images: expected one sub-folder per "
                           f"class, or images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) "
                           f"in the folder itself")
    prefixes = [f.split("_", 1)[0] if "_" in f else None for f in flat]
    paths = [os.path.join(root, f) for f in flat]
    if synsets is not None:
        known = {k for k, _ in synsets}
        for f, key in zip(flat, prefixes):
            if key not in known:
                raise EdgecnnError(f"{os.path.join(root, f)}: its class ({key or 'none'}: the "
                                   f"name before the first underscore) is not in "
                                   f"{synsets_path}; name files {{class}}_*.jpg")
        return Dataset(root, paths, prefixes, "imagenet flat", synsets)
    if all(p is not None and is_wnid(p) for p in prefixes):
        return Dataset(root, paths, prefixes, "imagenet flat")
    return Dataset(root, paths, [None] * len(paths), "unlabelled")


@dataclass
class LabelSpace:
    """How a dataset's classes map onto a model's outputs: ``index[key]`` is the output of
    class ``key``; ``names[i]`` the display name of output i; ``how`` says which mapping."""

    index: dict
    names: list
    how: str


def label_space(data: Dataset, num_outputs: int, labels: str = "auto",
                model_labels: list | None = None) -> LabelSpace:
    """Map ``data``'s classes onto ``num_outputs`` outputs.

    labels: ``"imagenet"`` (WordNet ids onto ImageNet-1k's 1000 outputs), a synsets-style
    file (line N = output N), or ``"auto"``: the folder's ``synsets.txt`` when it has one of
    the right length; ImageNet when the classes are WordNet ids and the model has 1000
    outputs (and no other class names); the model card's labels by name; else the sorted
    folder names (the order training gives them).
    """
    if not data.labelled:
        raise EdgecnnError(f"{data.root} has images but no classes: put them in one "
                           f"sub-folder per class, or name them {{wnid}}_*.jpg with a "
                           f"synsets.txt")
    text = str(labels)
    if text == "imagenet":
        return _imagenet(data, num_outputs)
    if text != "auto":
        if not os.path.isfile(text):
            raise EdgecnnError(f"--labels {text}: no such file; give auto, imagenet or a text "
                               f"file with one class per line in output order")
        return _from_list(data, read_synsets(text), num_outputs, text)
    wnid_classes = all(is_wnid(k) for k in data.classes)
    if data.synsets is not None and len(data.synsets) == num_outputs:
        return _from_list(data, data.synsets, num_outputs, os.path.join(data.root, SYNSETS))
    if wnid_classes and _imagenet_outputs(num_outputs, model_labels):
        return _imagenet(data, num_outputs)
    if model_labels is not None:
        return _by_name(data, list(model_labels))
    if data.synsets is not None:
        raise EdgecnnError(f"{os.path.join(data.root, SYNSETS)} lists {len(data.synsets)} "
                           f"classes but the model has {num_outputs} outputs; give --labels "
                           f"with the model's class list")
    if len(data.classes) != num_outputs:
        hint = (" (WordNet ids: --labels imagenet needs a 1000-class model)"
                if wnid_classes else "")
        raise EdgecnnError(f"{data.root} has {len(data.classes)} classes but the model has "
                           f"{num_outputs} outputs and no class names{hint}; give the folder "
                           f"the model was trained on (sorted sub-folders = class order) or "
                           f"--labels FILE")
    return LabelSpace({k: i for i, k in enumerate(data.classes)}, list(data.classes),
                      "sorted folder names")


def _imagenet_outputs(num_outputs: int, model_labels: list | None) -> bool:
    """Whether the outputs are ImageNet-1k's classes in the standard order: 1000 of them,
    or 1001 with "background" first (the TF-slim models: Google's hosted MobileNets), named
    as edgecnn names them or by their WordNet lemmas ("tench, Tinca tinca")."""
    if num_outputs not in (1000, 1001):
        return False
    if model_labels is None:
        return True
    names = [str(x) for x in model_labels]
    if num_outputs == 1001:
        if names[0].strip().lower() != "background":
            return False
        names = names[1:]
    if names == imagenet_classes():
        return True
    lemmas = [name.split(",")[0].strip().lower() for name in names]
    same = sum(a == b.lower() for a, b in zip(lemmas, imagenet_classes()))
    return same >= 0.9 * len(names)


def _imagenet(data: Dataset, num_outputs: int) -> LabelSpace:
    if num_outputs not in (1000, 1001):
        raise EdgecnnError(f"--labels imagenet maps onto ImageNet-1k's 1000 classes (1001 "
                           f"with background first) but the model has {num_outputs} outputs; "
                           f"give --labels FILE or a model with ImageNet weights")
    offset = num_outputs - 1000  # 1001 outputs: output 0 is "background"
    where = {wnid: i + offset for wnid, i in wnid_index().items()}
    unknown = [k for k in data.classes if k not in where]
    if unknown:
        raise EdgecnnError(f"--labels imagenet: {data.root} has classes that are not "
                           f"ImageNet-1k WordNet ids ({', '.join(unknown[:3])}); name class "
                           f"folders or files by wnid, e.g. n01440764")
    if offset:
        return LabelSpace({k: where[k] for k in data.classes},
                          ["background", *imagenet_classes()],
                          "ImageNet-1k WordNet ids (output 0: background)")
    return LabelSpace({k: where[k] for k in data.classes}, imagenet_classes(),
                      "ImageNet-1k WordNet ids")


def _from_list(data: Dataset, pairs: list, num_outputs: int, source: str) -> LabelSpace:
    if len(pairs) != num_outputs:
        raise EdgecnnError(f"{source} lists {len(pairs)} classes but the model has "
                           f"{num_outputs} outputs; give the list in the model's output order")
    where = {key: i for i, (key, _) in enumerate(pairs)}
    unknown = [k for k in data.classes if k not in where]
    if unknown:
        raise EdgecnnError(f"{data.root} has classes that {source} does not list: "
                           f"{', '.join(unknown[:3])}")
    return LabelSpace({k: where[k] for k in data.classes}, [name for _, name in pairs],
                      f"class list {source}")


def _by_name(data: Dataset, model_labels: list) -> LabelSpace:
    where = {str(name): i for i, name in enumerate(model_labels)}
    unknown = [k for k in data.classes if k not in where]
    if unknown:
        shown = ", ".join(map(str, model_labels[:10])) + (", ..." if len(model_labels) > 10
                                                          else "")
        hint = ("; WordNet ids map onto ImageNet with --labels imagenet"
                if all(is_wnid(k) for k in unknown) else "")
        raise EdgecnnError(f"{data.root} has classes the model does not know: "
                           f"{', '.join(unknown[:5])}; the model's classes are {shown}{hint}")
    return LabelSpace({k: where[k] for k in data.classes}, [str(x) for x in model_labels],
                      "the model's labels")


def subset(data: Dataset, indices) -> Dataset:
    """The files of ``data`` at ``indices`` (in that order), same layout and class list."""
    return Dataset(data.root, [data.files[i] for i in indices], [data.keys[i] for i in indices],
                   data.layout, data.synsets)


def split(data: Dataset, parts: int, seed: int = 0) -> list[list[int]]:
    """``parts`` disjoint index lists covering ``data``, class-mixed (a seeded shuffle),
    each sorted; sizes differ by at most one."""
    order = np.random.default_rng(seed).permutation(len(data.files))
    return [sorted(int(i) for i in order[k::parts]) for k in range(parts)]


def sample_indices(count: int, limit: int | None, seed: int = 0) -> list[int]:
    """The files ``load_images`` reads: all ``count``, or a seeded, sorted subset of
    ``limit``."""
    if limit is None or limit >= count:
        return list(range(count))
    return sorted(int(i) for i in np.random.default_rng(seed).permutation(count)[:limit])


def load_images(data: Dataset, size: int, *, space: LabelSpace | None = None,
                limit: int | None = None, seed: int = 0, crop: float = 1.0,
                resize: str = "bilinear") -> ImageFolder:
    """The images of ``data`` as uint8 arrays (a seeded, class-mixed subset of ``limit``
    when given), read by :func:`~edgecnn.data.folder.load_image`; labels are output indices
    in ``space`` (-1 without one). Files that are not readable images are skipped with a
    warning that counts them (``ImageFolder.skipped``); none readable is an error naming
    the first."""
    indices = sample_indices(len(data.files), limit, seed)
    images, kept, skipped = [], [], []
    for i in indices:
        try:
            images.append(load_image(data.files[i], size, crop, resize))
            kept.append(i)
        except EdgecnnError as exc:
            skipped.append((data.files[i], str(exc)))
    if not images:
        raise EdgecnnError(f"no readable images among the {len(indices)} read: "
                           f"{skipped[0][1]}")
    if skipped:
        warnings.warn(EdgecnnWarning(
            f"skipped {len(skipped)} of {len(indices)} image(s) that cannot be read (first: "
            f"{skipped[0][1]})"), stacklevel=2)
    labels = np.array([space.index[data.keys[i]] if space is not None else -1
                       for i in kept], dtype=np.int64)
    return ImageFolder(np.stack(images), labels,
                       list(space.names) if space is not None else [],
                       [data.files[i] for i in kept], [path for path, _ in skipped])


def load_image_folder(root: str, size: int, limit: int | None = None, seed: int = 0,
                      crop: float = 1.0, resize: str = "bilinear") -> ImageFolder:
    """The images of ``root`` (any :func:`scan` layout) with their classes numbered in
    sorted order, as training numbers them (a seeded, class-mixed subset of ``limit``)."""
    data = scan(root)
    space = LabelSpace({k: i for i, k in enumerate(data.classes)}, data.classes,
                       "sorted folder names") if data.labelled else None
    return load_images(data, size, space=space, limit=limit, seed=seed, crop=crop,
                       resize=resize)
