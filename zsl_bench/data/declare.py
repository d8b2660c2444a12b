"""Dataset declarations: one :class:`DatasetSpec` per dataset, registered in :data:`DATASETS`.

A declaration says everything the platform needs to know about a dataset in the xlsa17 on-disk format (a folder
holding ``att_splits.mat``, see :mod:`zsl_bench.data.xlsa17`); the readers in :mod:`zsl_bench.data.datasets` are
the same for every dataset, built-in or not:

* ``folder``: the default folder under ``data/`` (``data/CUB``);
* ``image_dir`` and ``anchors``: where the images live, and how an xlsa17 ``res101.mat`` path maps onto them
  (the part after the last anchor folder, e.g. ``…/CUB_200_2011/images/<class>/<file>`` → ``CUB_200_2011/images/
  <class>/<file>``); no anchors: ``res101.mat`` is not used for the image order;
* ``order``: ``(root, split) -> ImageOrder | None``, the dataset's own image order, tried after ``res101.mat``
  and ``image_files.txt``;
* ``attributes``: ``(root, num_attributes) -> AttributeInfo | None``, attribute names and groups;
* ``fetch``: the :class:`~zsl_bench.data.fetch_targets.Target` of ``zsl-bench data fetch <name>`` (archives, sha256,
  markers), or None with ``no_fetch`` saying why;
* ``counts``: the published xlsa17 counts; a folder whose ``att_splits.mat`` disagrees is refused as another
  dataset;
* hints: how to get the split files, the images and ``res101.mat`` (``{name}``, ``{root}``, ``{parent}`` are
  filled in).

:func:`xlsa17_dataset` makes a declaration in a few lines; :func:`register_dataset` registers it. Outside packages
declare theirs through the ``zsl_bench.datasets`` entry-point group (docs/datasets.md). Nothing heavy is imported
here: the built-in declarations (:mod:`zsl_bench.data.builtin`) are imported when one of them is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zsl_bench.errors import UserError
from zsl_bench.registry import Registry

if TYPE_CHECKING:
    from zsl_bench.data.attributes import AttributeInfo
    from zsl_bench.data.fetch_targets import Archive, Target
    from zsl_bench.data.layouts import ImageOrder
    from zsl_bench.data.xlsa17 import Xlsa17Split

OrderRule = Callable[[Path, "Xlsa17Split"], "ImageOrder | None"]
AttributeRule = Callable[["Path | None", int], "AttributeInfo | None"]

SPLIT_HINT = "`zsl-bench data fetch xlsa17 --root {parent}`"
IMAGES_HINT = "`zsl-bench data fetch {name} --root {root}`"
FEATURES_HINT = "`zsl-bench data fetch xlsa17 --root {parent}` (it ships res101.mat)"


@dataclass(frozen=True)
class Counts:
    """The published counts of an xlsa17 split: classes, attributes, seen / unseen classes, and the images of
    trainval, test_seen and test_unseen."""

    classes: int
    attributes: int
    seen: int
    unseen: int
    trainval: int
    test_seen: int
    test_unseen: int

    def split_counts(self) -> tuple[int, int, int, int, int]:
        """What ``att_splits.mat`` alone shows: (classes, attributes, trainval, test_seen, test_unseen)."""
        return (self.classes, self.attributes, self.trainval, self.test_seen, self.test_unseen)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset, declared (see the module docstring for every field's meaning)."""

    name: str
    folder: str
    image_dir: str = "images"
    anchors: tuple[tuple[str, str], ...] = ()
    order: OrderRule | None = None
    attributes: AttributeRule | None = None
    attribute_source: str = "attributes.txt"
    fetch: Target | None = None
    no_fetch: str | None = None
    counts: Counts | None = None
    split_hint: str = SPLIT_HINT
    images_hint: str = IMAGES_HINT
    features_hint: str = FEATURES_HINT
    description: str = ""

    def default_root(self) -> Path:
        """Where the dataset lives when the config gives no ``data.root``: ``data/<folder>``."""
        return Path("data") / self.folder

    def hint(self, which: str, root: Path) -> str:
        """The hint ``which`` (``split``, ``images``, ``features``) with ``{name}``, ``{root}``, ``{parent}`` filled."""
        text = {"split": self.split_hint, "images": self.images_hint, "features": self.features_hint}[which]
        return text.format(name=self.name, root=root, parent=Path(root).parent)

    def read_attributes(self, root: Path | None, num_attributes: int) -> AttributeInfo | None:
        """The attribute names of the folder ``root`` (None when the dataset has no source for them there).

        Raises:
            UserError: a source exists but is malformed or lists another number of attributes than the split.
        """
        info = self.attributes(root, num_attributes) if self.attributes is not None else None
        if info is not None and len(info) != num_attributes:
            raise UserError(
                f"{info.source} lists {len(info)} attribute names but att_splits.mat has {num_attributes} "
                "attributes; use the files of the same dataset"
            )
        return info


DATASETS: Registry[DatasetSpec] = Registry("dataset", group="zsl_bench.datasets")

BUILTIN_MODULE = "zsl_bench.data.builtin"
for _name in ("apy", "awa1", "awa2", "cub", "sun", "synth"):  # declared in BUILTIN_MODULE, imported on first use
    DATASETS.register_lazy(_name, BUILTIN_MODULE)


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Register ``spec`` under its own ``name`` (a taken name is an error) and return it."""
    if not isinstance(spec, DatasetSpec):
        raise UserError(f"register_dataset got a {type(spec).__name__}; pass a DatasetSpec (xlsa17_dataset(...))")
    DATASETS.add(spec.name, spec)
    return spec


def dataset_spec(dataset: str | DatasetSpec) -> DatasetSpec:
    """The declaration of ``dataset`` (a registered name, or a declaration passed through)."""
    if isinstance(dataset, DatasetSpec):
        return dataset
    spec = DATASETS.get(dataset)
    if not isinstance(spec, DatasetSpec):
        raise UserError(
            f"dataset {dataset!r} is registered as a {type(spec).__name__}, not a DatasetSpec; declare it with "
            "zsl_bench.data.declare.xlsa17_dataset (docs/datasets.md)"
        )
    return spec


# --------------------------------------------------------------------------------------------- the helper


def _attribute_rule(attributes: AttributeRule | Sequence[str] | Mapping[str, Sequence[str]] | None) -> AttributeRule:
    """A rule from what :func:`xlsa17_dataset` accepts: a rule, names, or group → names; None reads attributes.txt."""
    from zsl_bench.data import attributes as attrs

    if attributes is None:
        return attrs.attributes_txt()
    if callable(attributes):
        return attributes
    if isinstance(attributes, Mapping):
        pairs = [(str(g), str(n)) for g, names in attributes.items() for n in names]
        return attrs.fixed_attributes([n for _, n in pairs], [g for g, _ in pairs])
    if isinstance(attributes, str):
        raise UserError(f"attributes={attributes!r}: give a list of names, a dict group -> names, or a function")
    return attrs.fixed_attributes([str(n) for n in attributes])


def xlsa17_dataset(
    name: str,
    *,
    folder: str | None = None,
    image_dir: str = "images",
    anchors: Mapping[str, str] | None = None,
    order: OrderRule | None = None,
    attributes: AttributeRule | Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    archives: Sequence[Archive] = (),
    markers: Sequence[str] | None = None,
    counts: Counts | tuple[int, int, int, int, int, int, int] | None = None,
    **more: object,
) -> DatasetSpec:
    """A declaration of an xlsa17-format dataset in one call.

    Args:
        name: the registry name (``--dataset``, ``data.name``).
        folder: the default folder under ``data/`` (default: ``name`` upper-cased).
        image_dir: the image folder, relative to the dataset folder.
        anchors: res101 anchor folder → image folder (default: the last component of ``image_dir`` → ``image_dir``).
        order: the dataset's own image-order rule (``image_files.txt`` and ``res101.mat`` are always tried first).
        attributes: a rule ``(root, A) -> AttributeInfo | None``; a list of names (``group::value`` names are split
            into group and value); a dict group → names; or None: ``attributes.txt`` in the folder, when present.
        archives: the archives of ``zsl-bench data fetch <name>`` (none: the dataset cannot be fetched).
        markers: paths whose presence marks the fetched dataset as installed (default: ``image_dir``).
        counts: the published counts, a :class:`Counts` or its seven numbers in field order.
        **more: any other :class:`DatasetSpec` field (``no_fetch``, ``images_hint``, ``description``, …).
    """
    from zsl_bench.data.fetch_targets import Target

    image_dir = image_dir.strip("/") or "."
    if anchors is None:
        anchors = {Path(image_dir).name: image_dir} if image_dir != "." else {}
    target = Target(name, tuple(archives), tuple(markers or (image_dir,))) if archives else None
    if isinstance(counts, tuple):
        counts = Counts(*counts)
    return DatasetSpec(
        name=name,
        folder=folder or name.upper(),
        image_dir=image_dir,
        anchors=tuple(anchors.items()),
        order=order,
        attributes=_attribute_rule(attributes),
        fetch=target,
        counts=counts,
        **more,  # type: ignore[arg-type]
    )
