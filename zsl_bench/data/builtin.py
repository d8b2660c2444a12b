"""The built-in datasets, declared with the same public helper an outside package uses.

The five xlsa17 benchmarks of Xian et al. (CUB, AWA1, AWA2, SUN, aPY) and the synthetic dataset. Each is one
:func:`~zsl_bench.data.declare.xlsa17_dataset` call; importing this module registers them (the registry imports
it on the first lookup of one of their names). Folder layouts (``--root``)::

    CUB/   att_splits.mat [res101.mat] [sent_splits.mat] CUB_200_2011/images/<class>/<file>.jpg
           CUB_200_2011/images.txt CUB_200_2011/image_class_labels.txt attributes.txt
    AWA2/  att_splits.mat [res101.mat] Animals_with_Attributes2/JPEGImages/<class>/<file>.jpg
    AWA1/  att_splits.mat [res101.mat] [Animals_with_Attributes/JPEGImages/<class>/<file>.jpg]
    SUN/   att_splits.mat [res101.mat] images/<letter>/<class>/.../<file>.jpg
    APY/   att_splits.mat [res101.mat] VOCdevkit/VOC2008/JPEGImages/<file>.jpg ayahoo_test_images/<file>.jpg
           [attribute_data/attribute_names.txt]
    synth/ att_splits.mat image_files.txt images/<class>/<n>.png attributes.txt (``zsl-bench data synth``)

aPY: xlsa17's ``res101.mat`` lists object instances (a Pascal image with several objects appears once per
object); its paths end in ``…/JPEGImages/<file>`` (aPascal, from Pascal VOC 2008) or
``…/ayahoo_test_images/<file>`` (aYahoo), hence two anchors. The images are used whole (xlsa17's features were
too). AwA1: the images are no longer distributed; with ``res101.mat`` the platform trains on its features
(``data.features=res101``).
"""

from __future__ import annotations

from zsl_bench.data import attributes as attrs
from zsl_bench.data import layouts
from zsl_bench.data.declare import Counts, register_dataset, xlsa17_dataset
from zsl_bench.data.fetch_targets import Archive

CUB = register_dataset(
    xlsa17_dataset(
        "cub",
        folder="CUB",
        image_dir="CUB_200_2011/images",
        order=layouts.cub_order("CUB_200_2011/images", ("", "CUB_200_2011")),
        attributes=attrs.attributes_txt(("", "CUB_200_2011", "CUB_200_2011/attributes")),
        attribute_source="attributes.txt (shipped at the top of the CUB_200_2011 archive)",
        archives=(
            Archive(
                "CUB_200_2011.tgz",
                "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                # Caltech's archive; the same value is pinned by torchvision's prototype datasets and fastai.
                "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081",
                1_150_585_339,
                "CUB_200_2011/images",
            ),
        ),
        markers=("CUB_200_2011/images.txt", "CUB_200_2011/images"),
        counts=Counts(200, 312, 150, 50, 7057, 1764, 2967),
        description="Caltech-UCSD Birds-200-2011",
    )
)

AWA2 = register_dataset(
    xlsa17_dataset(
        "awa2",
        folder="AWA2",
        image_dir="Animals_with_Attributes2/JPEGImages",
        order=layouts.sorted_listing_order("Animals_with_Attributes2/JPEGImages", "`zsl-bench data fetch awa2`"),
        attributes=attrs.awa_attributes(("", "Animals_with_Attributes2")),
        attribute_source="predicates.txt or the built-in list",
        archives=(
            Archive(
                "AwA2-data.zip",
                "https://cvml.ist.ac.at/AwA2/AwA2-data.zip",
                None,  # no published checksum known: recorded on first use
                None,
                "Animals_with_Attributes2/JPEGImages",
            ),
        ),
        counts=Counts(50, 85, 40, 10, 23527, 5882, 7913),
        description="Animals with Attributes 2",
    )
)

AWA1 = register_dataset(
    xlsa17_dataset(
        "awa1",
        folder="AWA1",
        image_dir="Animals_with_Attributes/JPEGImages",
        attributes=attrs.awa_attributes(("", "Animals_with_Attributes")),
        attribute_source="predicates.txt or the built-in list",
        no_fetch=(
            "the AwA1 images are no longer distributed (withdrawn by their authors), only their ResNet-101 "
            "features: get them with `zsl-bench data fetch xlsa17` (res101.mat) and train with data.features=res101"
        ),
        images_hint=(
            "`zsl-bench data fetch xlsa17 --root {parent}` (res101.mat; the AwA1 images are no longer "
            "distributed: train on its features with data.features=res101)"
        ),
        counts=Counts(50, 85, 40, 10, 19832, 4958, 5685),
        description="Animals with Attributes (features only)",
    )
)

SUN = register_dataset(
    xlsa17_dataset(
        "sun",
        folder="SUN",
        image_dir="images",
        order=layouts.class_major_order(),
        attributes=lambda _root, _num: attrs.sun_attributes(),
        attribute_source="the built-in list",
        archives=(
            Archive(
                "SUNAttributeDB_Images.tar.gz",
                "https://cs.brown.edu/people/gmpatter/Attributes/SUNAttributeDB_Images.tar.gz",
                None,  # no published checksum known: recorded on first use
                None,
                "images",
            ),
        ),
        images_hint=(
            "`zsl-bench data fetch xlsa17 --root {parent}` (res101.mat) and `zsl-bench data fetch sun --root {root}`"
        ),
        counts=Counts(717, 102, 645, 72, 10320, 2580, 1440),
        description="SUN Attribute",
    )
)

_UIUC = "http://vision.cs.uiuc.edu/attributes"
_AYAHOO = "ayahoo_test_images"

APY = register_dataset(
    xlsa17_dataset(
        "apy",
        folder="APY",
        image_dir="VOCdevkit/VOC2008/JPEGImages",
        anchors={"JPEGImages": "VOCdevkit/VOC2008/JPEGImages", "ayahoo_test_images": "ayahoo_test_images"},
        attributes=lambda root, _num: attrs.apy_attributes(root),
        attribute_source="attribute_data/attribute_names.txt or the built-in list",
        archives=(
            Archive(
                "VOCtrainval_14-Jul-2008.tar",
                "http://host.robots.ox.ac.uk/pascal/VOC/voc2008/VOCtrainval_14-Jul-2008.tar",
                None,  # no published checksum known: recorded on first use
                None,
                "VOCdevkit/VOC2008/JPEGImages",
            ),
            Archive("ayahoo_test_images.tar.gz", f"{_UIUC}/ayahoo_test_images.tar.gz", None, None, _AYAHOO),
            Archive("attribute_data.tar.gz", f"{_UIUC}/attribute_data.tar.gz", None, None, "attribute_data"),
        ),
        markers=("VOCdevkit/VOC2008/JPEGImages", "ayahoo_test_images", "attribute_data"),
        images_hint=(
            "`zsl-bench data fetch xlsa17 --root {parent}` (res101.mat: the image order) and "
            "`zsl-bench data fetch apy --root {root}`"
        ),
        counts=Counts(32, 64, 20, 12, 5932, 1483, 7924),
        description="attribute Pascal and Yahoo (aPascal + aYahoo)",
    )
)


def _synth_names(_root: object, _num: int) -> attrs.AttributeInfo | None:
    from zsl_bench.data.synth import attribute_names

    return attrs.fixed_attributes(attribute_names(), source="synth generator")(None, _num)


SYNTH = register_dataset(
    xlsa17_dataset(
        "synth",
        folder="synth",
        image_dir=".",
        attributes=attrs.attributes_txt(("",), fallback=_synth_names),
        no_fetch="the synthetic dataset is generated, not downloaded: `zsl-bench data synth --out data/synth`",
        split_hint="`zsl-bench data synth --out {root}` (or point --data-root / data.root at it)",
        images_hint="`zsl-bench data synth --out {root}`",
        features_hint="`zsl-bench data synth --out {root} --res101`",
        description="procedural shapes (zsl_bench.data.synth)",
    )
)
