"""zsmie: zero-shot multimodal information extraction (MG-VMoE and baselines)."""

__version__ = "0.1.0"
