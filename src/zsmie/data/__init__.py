"""Readers, samples, zero-shot splits, images and batching."""

from zsmie.data.sample import DataError, Sample, Span

__all__ = ["DataError", "Sample", "Span"]
