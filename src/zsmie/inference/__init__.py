"""Inference: a trained model's answers for new samples and any labels.

    extractor.py  ZeroShotExtractor (from_pretrained / save_pretrained, predict), label sets,
                  predictions
    scoring.py    run_model over a data loader, label prototypes
    batch.py      predict_file: a JSONL file scored chunk by chunk (streamed, resumable,
                  multi-process): `zsmie predict`
    open_set.py   the "none of these" threshold: choice and leave-one-label-out calibration

It reads models (zsmie.models, zsmie.pretrained) and is read by evaluation, training, serving
and the CLI, never the other way round (tests/test_imports.py).
"""
