"""Choose the type-aware score (zsmie.models.typing) on validation, after training.

The final model (best weights, WiSE-FT, score ensemble) scores the validation samples once;
every candidate (source, temperature, lambda) is then a matrix sum, scored by validation
macro-F1. Lambda is searched as a multiple of the scores' typical spread (the mean over
samples of their standard deviation over labels), so one grid fits every model's scale
(cosine in [-1, 1] training-free, cosine x 10 for Proto, z-scores for an ensemble); the
absolute lambda is stored. Ties keep the plainer setting (smaller lambda, phrases before the
typer, lower temperature). lambda = 0 (the model as it was) is always a candidate, so
validation F1 never drops.

With `train.template_search`, the weight of the entity-filled template term
(zsmie.models.templates) is searched too, as a multiple of the scores' spread over the term's
(0 included), with the whole type-prior search above run for each; the pair of highest
validation F1 is kept (ties: the smaller template weight) and the template weight and map are
stored in the record's `templates`.

The typer (source `typer` and `both`) is a balanced logistic regression on the untouched
encoder's mention embeddings, fitted on the training part's arguments with the types their
labels' paths give: seen relations only, so nothing of the unseen labels leaks into it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from sklearn.linear_model import LogisticRegression

from zsmie.assemble import loaders
from zsmie.config import Config, save_config
from zsmie.data.sample import Sample
from zsmie.data.templates import label_templates, read_templates
from zsmie.data.types import DEFAULT_TYPES, types_from_name
from zsmie.evaluation.metrics import classification_metrics, evaluate_part
from zsmie.evaluation.run import load_final_model
from zsmie.inference.open_set import calibrate_prepared
from zsmie.inference.scoring import label_prototypes, run_model
from zsmie.io import atomic_write_json
from zsmie.models.templates import template_term, templated
from zsmie.models.typing import MentionTyper, frozen_encoder, type_term, typed
from zsmie.pretrained import require_run_folder
from zsmie.run_folder import CONFIG, OPEN_SET, RESULTS, TYPE_PRIOR

log = logging.getLogger(__name__)
MULTIPLIERS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0)
TEMPERATURES = (0.02, 0.05, 0.1)
TYPER_MAX_PER_TYPE = 2000  # arguments per type the typer is fitted on (a random sample)
TEMPLATE_MULTIPLIERS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # x scores' / term's spread


def argument_types(samples: list[Sample], vocabulary=DEFAULT_TYPES) -> tuple[list[str], list[str]]:
    """(mention texts, types) of every argument whose label's path gives its type."""
    texts, types = [], []
    for sample in samples:
        head, tail = types_from_name(sample.label or "", vocabulary)
        for span, kind in ((sample.head, head), (sample.tail, tail)):
            if span is not None and kind is not None:
                texts.append(sample.entity_text(span))
                types.append(kind)
    return texts, types


def fit_typer(typer: MentionTyper, samples: list[Sample], seed: int) -> dict | None:
    """A balanced logistic regression from mention embeddings to types, on the arguments of
    `samples` (the training part); None when they show fewer than two types."""
    texts, types = argument_types(samples, typer.types)
    if len(set(types)) < 2:
        log.info("type prior: no typer (the training arguments show %d type(s))", len(set(types)))
        return None
    rng = torch.Generator().manual_seed(seed)
    keep = []
    for kind in sorted(set(types)):
        rows = [i for i, t in enumerate(types) if t == kind]
        order = torch.randperm(len(rows), generator=rng)[:TYPER_MAX_PER_TYPE].tolist()
        keep += [rows[i] for i in sorted(order)]
    embedded = typer.embed([texts[i] for i in keep]).numpy()
    model = LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0)
    model.fit(embedded, [types[i] for i in keep])
    accuracy = float(model.score(embedded, [types[i] for i in keep]))
    log.info("type prior: typer fitted on %d training arguments (%s), training accuracy %.3f",
             len(keep), dict(sorted((k, types.count(k)) for k in set(types))), accuracy)
    coef, intercept = model.coef_.tolist(), model.intercept_.tolist()
    if len(model.classes_) == 2:  # sklearn keeps one row (the second class's); as two rows
        coef, intercept = [[0.0] * len(coef[0]), coef[0]], [0.0, intercept[0]]  # same softmax
    return {"classes": [str(c) for c in model.classes_], "coef": coef, "intercept": intercept,
            "fitted_on": len(keep), "train_accuracy": round(accuracy, 4)}


def candidates(typer_record: dict | None) -> list[tuple[str, float]]:
    """(source, temperature) pairs to try; the typer's temperature is not used (1)."""
    out = [("phrases", t) for t in TEMPERATURES]
    if typer_record is not None:
        out += [("typer", 1.0)] + [("both", t) for t in TEMPERATURES]
    return out


def mention_embeddings(samples: list[Sample], encoder,
                       vocabulary: dict[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The untouched encoder's embeddings of the samples' head and tail mentions."""
    probe = MentionTyper(encoder, vocabulary)
    return (probe.embed([s.entity_text(s.head) for s in samples]),
            probe.embed([s.entity_text(s.tail) for s in samples]))


def search(scores: torch.Tensor, gold: torch.Tensor, labels: list[str], samples: list[Sample],
           encoder, vocabulary: dict[str, str], typer_record: dict | None,
           mentions: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """The setting of highest validation macro-F1 over (source, temperature, lambda);
    `mentions`: mention_embeddings of `samples`, when already computed."""
    label_types = tuple(types_from_name(label, vocabulary) for label in labels)
    spread = float(scores.std(-1, unbiased=False).mean())
    head_emb, tail_emb = mentions or mention_embeddings(samples, encoder, vocabulary)

    def f1_of(matrix: torch.Tensor) -> float:
        return classification_metrics(gold.tolist(), matrix.argmax(-1).tolist(), labels)["f1"]

    table: dict[str, float] = {}
    best = (f1_of(scores), 0.0, "phrases", TEMPERATURES[0])
    table["lambda=0"] = round(best[0], 6)
    for source, temperature in candidates(typer_record):
        typer = MentionTyper(encoder, vocabulary, source, temperature, typer_record)
        term = type_term(typer.from_embeddings(head_emb), typer.from_embeddings(tail_emb),
                         label_types, list(vocabulary))
        for multiple in MULTIPLIERS[1:]:
            f1 = f1_of(scores + multiple * spread * term)
            table[f"{source} T={temperature:g} m={multiple:g}"] = round(f1, 6)
            if f1 > best[0]:
                best = (f1, multiple * spread, source, temperature)
    f1, weight, source, temperature = best
    return {"weight": weight, "source": source, "temperature": temperature, "types": vocabulary,
            "typer": typer_record if source != "phrases" else None, "spread": spread,
            "val_f1": f1, "chosen_on": "validation macro-F1", "grid": table}


def summary(record: dict) -> dict:
    """What results.json keeps of a type-prior record: the choice, without the typer's
    coefficients, the search grid and the template map (all in type_prior.json)."""
    out = {k: v for k, v in record.items() if k not in ("typer", "grid")}
    if out.get("templates"):
        out["templates"] = {k: v for k, v in out["templates"].items() if k != "map"}
    return out


def spread(matrix: torch.Tensor) -> float:
    """The typical spread of a score matrix [N, C]: the mean over rows of the std over columns."""
    return float(matrix.std(-1, unbiased=False).mean().clamp_min(1e-9))


def template_scores(samples: list[Sample], labels: list[str], encoder,
                    templates: dict[str, str]) -> torch.Tensor:
    """The template term [N, C] of `samples` against `labels` (zsmie.models.templates)."""
    return template_term(encoder, [" ".join(s.tokens) for s in samples],
                         [(s.entity_text(s.head), s.entity_text(s.tail)) for s in samples],
                         label_templates(labels, templates))


def search_templates(scores: torch.Tensor, term: torch.Tensor, gold: torch.Tensor,
                     labels: list[str], samples: list[Sample], encoder,
                     vocabulary: dict[str, str], typer_record: dict | None,
                     prior: bool = True) -> tuple[float, float, dict | None]:
    """(validation F1, template multiple, type-prior record) of the best template weight,
    the type prior searched on top of each (`prior`), or alone."""
    best = None
    mentions = mention_embeddings(samples, encoder, vocabulary) if prior else None
    for multiple in TEMPLATE_MULTIPLIERS:
        shifted = scores + multiple * spread(scores) / spread(term) * term
        if prior:
            record = search(shifted, gold, labels, samples, encoder, vocabulary, typer_record,
                            mentions)
            value = record["val_f1"]
        else:
            record = None
            value = classification_metrics(gold.tolist(), shifted.argmax(-1).tolist(), labels)["f1"]
        if best is None or value > best[0] + 1e-12:
            best = (value, multiple, record)
    return best


@torch.no_grad()
def choose_type_prior(config: Config, prepared, model, val_loader, accelerator, out: Path):
    """Search the type prior for `model` (the run's final model) on validation; write
    type_prior.json. Returns (the model with the chosen term, the record)."""
    if config.task != "mre":
        raise ValueError("train.type_search: the type prior ranks relations by their "
                         "arguments' types; it applies to MRE only (MET's labels are the types)")
    labels = list(prepared.split.part("val"))
    texts = prepared.texts("val")
    plain = list(texts)  # without their types: the model's own scores, which the search adds to
    predictions = run_model(model, val_loader, label_prototypes(model, plain, {}),
                            accelerator=accelerator)
    dataset = prepared.datasets["val"]
    samples = [dataset.samples[i] for i in predictions.index.tolist()]
    encoder = frozen_encoder(model, config)
    probe = MentionTyper(encoder, DEFAULT_TYPES)
    typer_record = fit_typer(probe, prepared.parts["train"], config.seed)
    scores = predictions.scores
    if config.train.template_search:
        mapping = read_templates(config.label_templates) if config.label_templates else {}
        term = template_scores(samples, labels, encoder, mapping)
        _, multiple, record = search_templates(scores, term, predictions.labels, labels, samples,
                                               encoder, dict(DEFAULT_TYPES), typer_record)
        weight = multiple * spread(scores) / spread(term)
        record["templates"] = {"weight": weight, "multiple": multiple, "map": mapping,
                               "source": config.label_templates or "label names"}
        log.info("templates: weight %.4g (%.2f x spread)", weight, multiple)
    else:
        record = search(scores, predictions.labels, labels, samples, encoder,
                        dict(DEFAULT_TYPES), typer_record)
    if accelerator is None or accelerator.is_main_process:
        atomic_write_json(Path(out) / TYPE_PRIOR, record)
    log.info("type prior: %s, lambda %.4g (%.2f x spread), T %g: validation F1 %.4f (%.4f "
             "without)", record["source"], record["weight"],
             record["weight"] / max(record["spread"], 1e-9), record["temperature"],
             record["val_f1"], record["grid"]["lambda=0"])
    model = templated(model, config, record.get("templates"), encoder)
    return typed(model, config, record, encoder), record


def fit_run(run_dir: str | Path, data_dir: str | None = None, templates: str | None = None) -> dict:
    """Choose the type prior for a finished run (any model, trained with or without it) on
    its validation split, after the fact: writes type_prior.json, re-calibrates the open-set
    threshold with it, and records in results.json the validation and test figures with it
    (those without it kept under `without_type_prior`). `templates`: also weigh the
    entity-filled label templates of this map (`label_templates`; "" for those the names
    spell; "off" for none; None: as the run's config says). Returns that part of results.json."""
    run = require_run_folder(run_dir, "zsmie type-prior")
    prepared, base, device = load_final_model(run, data_dir, type_prior=False)
    config = prepared.config
    config.train.type_search = True
    if templates == "off":
        config.label_templates, config.train.template_search = "", False
    elif templates is not None:
        if templates:
            read_templates(templates)  # a bad map fails here, before any scoring
        config.label_templates, config.train.template_search = templates, True
    data = loaders(prepared, config)
    without = {part: evaluate_part(prepared, base, data[part], part) for part in ("val", "test")}
    model, record = choose_type_prior(config, prepared, base, data["val"], None, run)
    model = model.to(device)
    after = {part: evaluate_part(prepared, model, data[part], part) for part in ("val", "test")}
    if (run / OPEN_SET).is_file():
        calibrate_prepared(prepared, model, run, device)
    save_config(config, run / CONFIG)
    results_path = run / RESULTS
    results = json.loads(results_path.read_text(encoding="utf-8")) if results_path.is_file() else {}
    results.setdefault("without_type_prior", without)
    results.update(after)
    results["type_prior"] = summary(record)
    atomic_write_json(results_path, results)
    return {"type_prior": results["type_prior"], "without_type_prior": without, **after}
