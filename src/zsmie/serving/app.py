"""`zsmie serve`: a trained run behind an HTTP JSON API (FastAPI), with a page to try it.

    POST /predict {"samples": [<JSONL sample objects>], "labels": [...],
                   "descriptions": {...}, "top_k": 5, "open_set": false}
        -> {"predictions": [<the objects `zsmie predict` prints>, in order]}
    GET /health -> {"status": "ok", "task": ..., "precision": "fp32" | "int8", "limits": {...}}
    GET / -> the page (static/index.html)

The model is loaded once; concurrent requests are micro-batched (batcher.py), heavy ones in
pieces so that light ones keep flowing. Every request is checked whole before it is queued
(its samples encoded, its label texts built), so a bad request fails alone. Bad input is a
4xx whose `detail` names the field: 413 for a body, sample list, label list or encoder work
over its limit, 415 for a POST that is not `application/json`, 422 for anything malformed,
408 for a body not received in time. A Host header other than the allowed hosts is a 400
(DNS rebinding). Image paths are not read from requests (they would be files of the
server); a sample's image travels in the request instead, as `"image_data"`: base64 or a
`data:image/...;base64,` URL, at most `max_image_bytes` decoded (413), checked as every image
is (data.images.image_problem: a file that does not decode, or is too large, is a 422 naming
`samples[i].image_data`). Runs that read text only ignore `image_data` (GET /health says
`"images": false`). There is no /docs page (it would load scripts from a CDN);
/openapi.json describes the API.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect

from zsmie.data.images import image_problem
from zsmie.data.sample import DataError
from zsmie.display import shown
from zsmie.inference.extractor import ZeroShotExtractor
from zsmie.models.typing import TypePriored
from zsmie.serving.batcher import MicroBatcher

access_log = logging.getLogger("zsmie.access")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_samples: int = 64  # per request
    max_image_bytes: int = 1 << 19  # one sample's image_data, decoded
    max_labels: int = 128  # per request
    # encoder tokens per request: the samples' (with markers) plus the label texts' (each at
    # most text.max_length; a cross-encoder reads every (sample, label) pair)
    max_work: int = 8192
    body_timeout: float = 30.0  # seconds to receive a request's body

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_samples", "max_image_bytes", "max_labels", "max_work",
                     "body_timeout"):
            if not getattr(self, name) >= 1:
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


def _require_json(request: Request) -> None:
    """A POST body must be declared JSON: a cross-origin page can send text/plain without a
    preflight, and it must not be read as a request."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, f"Content-Type: {kind or 'none'} given, expected application/json")


async def _read_body(request: Request, limit: int, timeout: float = 30.0) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body: {declared} bytes, at most {limit} per request")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"body: over {limit} bytes, at most {limit} per request")
                chunks.append(chunk)
    except ClientDisconnect:  # the client left: nobody reads the answer, nothing to log
        raise HTTPException(400, "body: the client disconnected before sending all of it") from None
    except TimeoutError:
        raise HTTPException(408, f"body: not received within {timeout:g} s "
                                 "(--body-timeout)") from None
    return b"".join(chunks)


def _parse(body: bytes, limits: Limits, state: Any = None) -> PredictRequest:
    """The request, checked; `state` (a request's) gets the numbers of samples and labels."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(422, f"body: not valid JSON ({exc})") from None
    if isinstance(data, dict):  # counted before validation: a huge list is refused unread
        for key in ("samples", "labels"):
            if state is not None and isinstance(data.get(key), list):
                setattr(state, key, len(data[key]))
        for key, limit in (("samples", limits.max_samples), ("labels", limits.max_labels)):
            if isinstance(data.get(key), list) and len(data[key]) > limit:
                raise HTTPException(413, f"{key}: {len(data[key])} given, at most {limit} per request")
    try:
        return PredictRequest.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise HTTPException(422, f"{_field(error['loc'])}: {error['msg']}") from None


IMAGE_FIELD = "image_data"  # a request sample's image: base64, or a data: URL of base64


def _image_bytes(value: Any, where: str, limit: int) -> bytes:
    """The decoded bytes of a sample's `image_data` (not yet known to be an image), or a 4xx
    naming `where`: 413 over `limit` bytes, 422 for anything that is not base64."""
    if not isinstance(value, str):
        raise HTTPException(422, f"{where}: should be a base64 string or a data: URL "
                                 f"(data:image/png;base64,...), got {type(value).__name__}")
    text = value
    if text[:5].lower() == "data:":
        header, comma, text = text.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise HTTPException(422, f"{where}: a data: URL must be base64 "
                                     f"(data:image/png;base64,...), got {header[:40]!r}")
    if len(text) > 4 * (limit // 3 + 1) + 4:  # refused before decoding
        raise HTTPException(413, f"{where}: over {limit} bytes, at most {limit} per image "
                                 "(--max-image-bytes)")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HTTPException(422, f"{where}: not valid base64 ({exc})") from None
    if not data:
        raise HTTPException(422, f"{where}: empty (no image bytes)")
    if len(data) > limit:
        raise HTTPException(413, f"{where}: {len(data)} bytes, at most {limit} per image "
                                 "(--max-image-bytes)")
    return data


class AccessLog:
    """One log line per HTTP request (zsmie.access, INFO): method, path, status, the samples
    and labels of a prediction, milliseconds."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = scope.get("state") or {}
            access_log.info("%s %s %d samples=%s labels=%s %.0f ms", scope["method"], scope["path"],
                            status[0], state.get("samples", "-"), state.get("labels", "-"),
                            1000 * (time.perf_counter() - start))


def create_app(extractor: ZeroShotExtractor, limits: Limits = Limits(),
               batcher: MicroBatcher | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The service around one loaded extractor. `allowed_hosts`: the Host headers answered
    (None: any; see `allowed_hosts_for`)."""
    batcher = batcher or MicroBatcher(extractor)

    # posted images, each a file for the request's life (the model reads images from files)
    images = tempfile.TemporaryDirectory(prefix="zsmie-serve-images-")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()
        images.cleanup()

    app = FastAPI(title="zsmie", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher = batcher
    app.state.image_dir = images.name
    if allowed_hosts is not None and "*" not in allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(AccessLog)
    page = resources.files("zsmie.serving").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    # what decides "none of these" (the page explains it): the best score, or its margin over
    # the trained none class, against the run's threshold
    open_set_rule = {} if extractor.threshold is None else {
        "open_set_threshold": shown(extractor.threshold),
        "open_set_rule": "margin" if extractor.none_text else "top",
        **({"open_set_none_text": extractor.none_text} if extractor.none_text else {})}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "task": extractor.config.task, "model": extractor.config.model.name,
                "open_set": extractor.threshold is not None,
                "type_prior": isinstance(extractor.model, TypePriored), "precision": extractor.precision,
                "label_templates": extractor.template_tokens > 0,  # entity-filled templates weighed
                "images": extractor.model.uses_images,  # whether samples' image_data is read
                "limits": asdict(limits),
                **open_set_rule}

    def prepare(body: PredictRequest, posted: list[bytes | None], files: list[str]):
        """In the model thread: the checked samples (each with its posted image, written to a
        file listed in `files`, or none), their encodings, the label set and the tokens of
        each label text; any problem is this request's (DataError, ValueError)."""
        records = [{k: v for k, v in s.items() if k != IMAGE_FIELD} for s in body.samples]
        samples = [dataclasses.replace(s, image=None)  # paths are server files: unread
                   for s in extractor.samples(records)]
        for i, data in enumerate(posted):
            if data is None:
                continue
            handle, path = tempfile.mkstemp(suffix=".image", dir=images.name)
            files.append(path)
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            if (problem := image_problem(path)) is not None:  # the one image check
                raise DataError(f"samples[{i}].{IMAGE_FIELD}: the image is {problem}")
            samples[i] = dataclasses.replace(samples[i], image=path)
        label_set = extractor.label_set(body.labels, descriptions=body.descriptions, top_k=body.top_k,
                                    open_set=body.open_set)
        encoded = extractor.encode(samples)
        label_tokens = extractor.label_tokens(
            [*label_set.texts, *([label_set.none_text] if label_set.none_text else [])])
        return samples, label_set, encoded, label_tokens

    @app.post("/predict")
    async def predict(request: Request) -> dict:
        _require_json(request)
        body = _parse(await _read_body(request, limits.max_body_bytes, limits.body_timeout), limits,
                      request.state)
        # image_data is read by runs that read images only (text-only runs ignore it)
        posted = [_image_bytes(s[IMAGE_FIELD], f"samples[{i}].{IMAGE_FIELD}", limits.max_image_bytes)
                  if IMAGE_FIELD in s and extractor.model.uses_images else None
                  for i, s in enumerate(body.samples)]
        files: list[str] = []
        try:
            return await _predict(body, posted, files)
        finally:  # the request's images go with it
            for path in files:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    async def _predict(body: PredictRequest, posted: list[bytes | None], files: list[str]) -> dict:
        try:
            samples, label_set, encoded, label_tokens = await batcher.run(prepare, body, posted,
                                                                          files)
        except (DataError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        sample_tokens = [len(e.input_ids) for e in encoded]
        work = extractor.work(sample_tokens, label_tokens)
        if work > limits.max_work:
            raise HTTPException(413, f"work: {work} encoder tokens ({sum(sample_tokens)} in samples, "
                                     f"{sum(label_tokens)} in label texts), at most "
                                     f"{limits.max_work} per request (--max-work)")
        try:
            predictions = await batcher.predict(samples, label_set, encoded, sample_tokens,
                                                label_tokens)
        except (DataError, ValueError) as exc:  # this request's own input (it alone fails)
            raise HTTPException(422, str(exc)) from None
        return {"predictions": [p.as_dict() for p in predictions]}

    return app
