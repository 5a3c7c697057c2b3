"""Model heads by name: the config's `model.name` picks one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zsmie.errors import ConfigError
from zsmie.layers.vmoe import VariationalMoE
from zsmie.losses.mgvat import GraphVAT
from zsmie.models.base import ZeroShotHead
from zsmie.models.cross import CrossEncoderHead
from zsmie.models.matching import RelationMatching
from zsmie.models.mgvmoe import MGVMoE
from zsmie.models.mmproto import MMProto
from zsmie.models.proto import Proto
from zsmie.models.similarity import SentenceSimilarity
from zsmie.models.zsbert import ZSBert

# The `config` arguments are a zsmie.config.Config, read but never imported (models sit below it).


def scorer_options(config: Any) -> dict:
    m = config.model
    return {
        "init": m.proj_init,
        "score": m.score,
        "scale": m.scale,
        "dropout": m.dropout,
        "margin": m.margin,
    }


def _proto(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    proj = config.model.proj_dim or text_dim
    return Proto((n_markers + 1) * text_dim, text_dim, proj, **scorer_options(config))


def _mgvmoe(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    m = config.model
    vmoe = VariationalMoE(
        text_dim, m.experts, init=m.vmoe_init, init_std=m.vmoe_init_std,
        kl_reduction=m.kl_reduction,
    ) if m.vmoe else None
    vat = GraphVAT(
        2 * text_dim, mode=m.vat_mode, epsilon=m.vat_epsilon, power_steps=m.vat_power_steps,
        penalty=m.vat_penalty, lr=m.tau_lr, score=m.vat_score, complement=m.vat_complement,
    ) if m.mgvat else None
    if vmoe is not None:
        vmoe.force_expert = m.force_expert
    return MGVMoE(
        text_dim, vision_dim, (n_markers + 1) * text_dim, m.proj_dim or text_dim, vmoe, vat,
        beta=m.beta, fusion=m.fusion, **scorer_options(config),
    )


def _similarity(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    return SentenceSimilarity()


def _mmproto(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    proj = config.model.proj_dim or text_dim
    return MMProto((n_markers + 1) * text_dim, text_dim, vision_dim, proj, **scorer_options(config))


def _zsbert(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    if config.model.proj_dim not in (0, text_dim):
        raise ConfigError(
            f"model.proj_dim = {config.model.proj_dim}: zsbert projects samples into the label "
            f"embedding space, of the text encoder's size {text_dim}; leave it 0"
        )
    return ZSBert(text_dim, n_markers, **scorer_options(config))


def _matching(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    if config.task != "mre":
        raise ConfigError(
            f"model.name = 'matching' matches a head and a tail entity: relation extraction "
            f"only (task = 'mre'), not task = {config.task!r}"
        )
    proj = config.model.proj_dim or text_dim
    return RelationMatching(text_dim, proj, **scorer_options(config))


def _cross(config: Any, text_dim: int, vision_dim: int, n_markers: int) -> ZeroShotHead:
    m = config.model
    return CrossEncoderHead(text_dim, m.negatives, m.dropout, m.scale)


BUILDERS: dict[str, Callable[..., ZeroShotHead]] = {
    "proto": _proto,
    "mgvmoe": _mgvmoe,
    "similarity": _similarity,
    "mmproto": _mmproto,
    "zsbert": _zsbert,
    "matching": _matching,
    "cross": _cross,
}


def build_head(config: Any, text_dim: int, vision_dim: int) -> ZeroShotHead:
    name = config.model.name
    if name not in BUILDERS:
        raise ConfigError(f"model.name = {name!r}: expected one of {sorted(BUILDERS)}")
    n_markers = 2 if config.task == "mre" else 1
    return BUILDERS[name](config, text_dim, vision_dim, n_markers)
