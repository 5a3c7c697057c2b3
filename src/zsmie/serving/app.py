"""`zsmie serve`: a trained run behind an HTTP JSON API (FastAPI), with a page to try it.

    POST /predict {"samples": [<JSONL sample objects>], "labels": [...],
                   "descriptions": {...}, "top_k": 5, "open_set": false}
        -> {"predictions": [<the objects `zsmie predict` prints>, in order]}
    GET /health -> {"status": "ok", "task": ..., "precision": "fp32" | "int8", "limits": {...}}
    GET / -> the page (static/index.html)

The model is loaded once; concurrent requests are micro-batched (batcher.py). Bad input is a
4xx whose `detail` names the field: 413 for a body, sample list or label list over its
limit, 422 for anything malformed. Image paths are not read from requests (they would be
files of the server): an image run scores posted samples without images.
"""

from __future__ import annotations

import dataclasses
import json
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from zsmie.data.sample import DataError
from zsmie.models.typing import TypePriored
from zsmie.predict import ZeroShotExtractor
from zsmie.serving.batcher import MicroBatcher


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_samples: int = 64  # per request
    max_labels: int = 128  # per request

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_samples", "max_labels"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} = {getattr(self, name)}: "
                                 "must be at least 1")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    samples: list[dict] = Field(min_length=1)
    # names, or {name, head_type, tail_type} objects (checked by the extractor: zsmie.data.types)
    labels: list[Any] = Field(min_length=1)
    descriptions: dict[str, str] | None = None
    top_k: int = Field(5, ge=1)
    open_set: bool = False


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body: {declared} bytes, at most {limit} per request")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"body: over {limit} bytes, at most {limit} per request")
            chunks.append(chunk)
    except ClientDisconnect:  # the client left: nobody reads the answer, nothing to log
        raise HTTPException(400, "body: the client disconnected before sending all of it") from None
    return b"".join(chunks)


def _parse(body: bytes, limits: Limits) -> PredictRequest:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, f"body: not valid JSON ({exc})") from None
    if isinstance(data, dict):  # counted before validation: a huge list is refused unread
        for key, limit in (("samples", limits.max_samples), ("labels", limits.max_labels)):
            if isinstance(data.get(key), list) and len(data[key]) > limit:
                raise HTTPException(413, f"{key}: {len(data[key])} given, at most {limit} per request")
    try:
        return PredictRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise HTTPException(422, f"{_field(error['loc'])}: {error['msg']}") from None


def create_app(extractor: ZeroShotExtractor, limits: Limits = Limits(),
               batcher: MicroBatcher | None = None) -> FastAPI:
    """The service around one loaded extractor."""
    batcher = batcher or MicroBatcher(extractor)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="zsmie", lifespan=lifespan)
    app.state.batcher = batcher
    page = resources.files("zsmie.serving").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    # what decides "none of these" (the page explains it): the best score, or its margin over
    # the trained none class, against the run's threshold
    open_set_rule = {} if extractor.threshold is None else {
        "open_set_threshold": round(extractor.threshold, 4),
        "open_set_rule": "margin" if extractor.none_text else "top",
        **({"open_set_none_text": extractor.none_text} if extractor.none_text else {})}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "task": extractor.config.task, "model": extractor.config.model.name,
                "open_set": extractor.threshold is not None,
                "type_prior": isinstance(extractor.model, TypePriored), "precision": extractor.precision,
                "limits": asdict(limits),
                **open_set_rule}

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        body = _parse(await _read_body(request, limits.max_body_bytes), limits)
        try:
            samples = extractor.samples(body.samples)
            label_set = extractor.label_set(body.labels, body.descriptions, body.top_k, body.open_set)
        except (DataError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        samples = [dataclasses.replace(s, image=None) for s in samples]  # server files: unread
        try:
            predictions = await batcher.predict(samples, label_set)
        except (DataError, ValueError) as exc:  # this request's own input (it alone fails)
            raise HTTPException(422, str(exc)) from None
        return {"predictions": [p.as_dict() for p in predictions]}

    return app
