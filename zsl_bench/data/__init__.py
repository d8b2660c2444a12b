"""Datasets: declarations, the xlsa17 split format, the real CUB/AWA1/AWA2/SUN/aPY folders, synth, images.

Modules (each owns one thing; nothing heavy is imported here):

* ``xlsa17`` — read/write ``att_splits.mat``; ``image_list`` — read/write ``image_files.txt``; ``split_checks`` —
  index checks with and without labels, the counts of a split.
* ``declare`` — the public dataset interface: ``DatasetSpec`` (one declaration per dataset), the registry
  ``DATASETS`` (entry-point group ``zsl_bench.datasets``), ``xlsa17_dataset`` / ``register_dataset``.
* ``builtin`` — the declarations of cub, awa1, awa2, sun, apy and synth (imported on first lookup).
* ``layouts`` — image-order rules: res101.mat paths by anchor folder, CUB's lists, sorted listings, SUN's rule.
* ``splits`` — xlsa17 class lists and the honest train/val class split (no test image in train or val).
* ``attributes`` — attribute names, groups and value words (DUET prompts, plots).
* ``datasets`` — the one reader of every declaration: ``read_dataset`` (split files suffice), ``load_dataset``
  (for training), ``inspect_dataset`` (``zsl-bench data inspect``).
* ``protocol`` — which indices train / validate / test in stage ``search`` and ``final``.
* ``synth`` — the procedural dataset in the same on-disk format.
* ``images`` — whole-dataset decoding into memory (small data: synth, tiny models).
* ``transforms`` — per-model pipelines: deterministic ``preprocess`` + per-batch ``augment``.
* ``cache`` / ``stream`` — memory-mapped preprocessed images and batch streaming for large datasets; see the
  ``stream`` module docstring for what the engine calls.
* ``features`` / ``feature_store`` — feature datasets (``res101.mat``) and the frozen-backbone feature cache.
* ``fetch`` — ``zsl-bench data fetch``: download (resumable, ``fetch_download``), sha256 (``fetch_checksums``),
  unpack safely (``fetch_archive``), place (``fetch_install``); the targets in ``fetch_targets``.
"""
