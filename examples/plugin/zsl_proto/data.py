"""``toyshapes``: an example dataset declaration — any folder in the xlsa17 format becomes a zsl-bench dataset.

The folder holds ``att_splits.mat`` (class attribute matrix, class names and the proposed-split indices) and
``image_files.txt`` (``path<TAB>label`` per image, in index order); ``zsl-bench data synth --out data/TOYSHAPES``
writes one. Declaring it is one call; the ``zsl_bench.datasets`` entry point in ``pyproject.toml`` names the object,
and ``--dataset toyshapes`` then works in ``data inspect``, ``train`` and every sweep trial. A real dataset would
also give ``counts`` (its published split sizes: a folder of another dataset is then refused), fetch ``archives``
and an ``order`` rule for its own image list.
"""

from __future__ import annotations

from zsl_bench.data.declare import register_dataset, xlsa17_dataset

TOYSHAPES = register_dataset(  # registering on import also serves `--plugin zsl_proto.data` (not installed)
    xlsa17_dataset(
        "toyshapes",
        folder="TOYSHAPES",  # default root: data/TOYSHAPES
        image_dir="images",
        attributes={  # attribute groups → names, in the columns' order
            "colour": ["red", "green", "blue", "yellow"],
            "pattern": ["solid", "stripes", "dots"],
            "size": ["small", "large"],
            "shape": ["circle", "square", "triangle", "cross"],
        },
        description="coloured shapes on 64-px images (the output of `zsl-bench data synth`)",
        split_hint="`zsl-bench data synth --out {root}`",  # what to run when the folder is missing
        images_hint="`zsl-bench data synth --out {root}`",
    )
)
