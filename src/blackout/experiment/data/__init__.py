"""Datasets (``sources``) and the task streams built from them (``streams``)."""

from .sources import Dataset, cache_dir, download, load_dataset, read_idx

__all__ = ["Dataset", "cache_dir", "download", "load_dataset", "read_idx"]
