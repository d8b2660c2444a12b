"""Datasets: readers and writers of the xlsa17 on-disk format and the procedural synthetic dataset."""
