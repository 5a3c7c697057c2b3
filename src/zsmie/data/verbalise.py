"""Label verbalisation: a sentence for a label from its name and typed path, written by no one.

A typed relation path `/per/org/member_of` names the head's type, the tail's type and the
relation; it becomes "the head, a person, is a member of the tail, an organization". The
relation's grammar decides the frame (part-of-speech facts from `lemminflect`, articles and
number from `inflect`):

- starts with a verb's -s form: "the head, H, works for the tail, T" ("charges");
- ends in a preposition: "the head, H, is {a member of | located at | held on} the tail, T"
  (a noun before "of" gets an article; a verb that is only a verb is put in the participle);
- a verb and nothing else: "the head, H, contains the tail, T" (base form -> third person),
  "the head, H, is awarded the tail, T" (participle);
- otherwise a noun: "the place of birth of the head, H, is the tail, T" ("are" for plurals).

A label with no path (`place_of_birth`) gets the same frame without the types; an entity
type label (MET: WikiDiverse's "Location") is a plain name already and stays its name.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

PREPOSITIONS = frozenset({"of", "in", "at", "on", "to", "from", "with", "by", "for", "as", "into"})


@functools.cache
def _inflect():
    import inflect

    return inflect.engine()


def _verb_only(word: str) -> bool:
    """True when English uses `word` only as a verb ("contain", "located", "awarded")."""
    from lemminflect import getAllLemmas

    return set(getAllLemmas(word)) == {"VERB"}


def _is_base_verb(word: str) -> bool:
    from lemminflect import getAllLemmas

    return word in getAllLemmas(word).get("VERB", ())


def _third_person(word: str) -> bool:
    """True for a verb's -s form ("works", "charges"): it reads as a finite verb already."""
    from lemminflect import getAllLemmas

    return any(_inflection(lemma, "VBZ") == word != lemma
               for lemma in getAllLemmas(word).get("VERB", ()))


def _inflection(word: str, tag: str) -> str:
    from lemminflect import getInflection

    found = getInflection(word, tag)
    return found[0] if found else word


def _mention(role: str, kind: str | None) -> str:
    return f"the {role}" if kind is None else f"the {role}, {_inflect().a(kind)},"


def relation_sentence(relation: list[str], head: str | None, tail: str | None) -> str:
    """A sentence for relation words (["member", "of"]) between typed head and tail."""
    return _frame(relation, _mention("head", head), _mention("tail", tail))


def _frame(relation: list[str], h: str, t: str) -> str:
    """The relation's sentence frame around the head and tail mentions `h` and `t`."""
    first, rest = relation[0], relation[1:]
    if _third_person(first):
        return f"{h} {' '.join(relation)} {t}".rstrip(",")
    if relation[-1] in PREPOSITIONS and len(relation) > 1:
        if _verb_only(first):
            words = [_inflection(first, "VBN") if _is_base_verb(first) else first, *rest]
            predicate = "is " + " ".join(words)
        elif relation[-1] == "of":
            predicate = "is " + _inflect().a(" ".join(relation[:-1])) + " of"
        else:
            predicate = "is " + " ".join(relation)
        return f"{h} {predicate} {t}".rstrip(",")
    if len(relation) == 1 and _verb_only(first):
        verb = _inflection(first, "VBZ") if _is_base_verb(first) else f"is {first}"
        return f"{h} {verb} {t}".rstrip(",")
    plural = bool(_inflect().singular_noun(relation[-1]))
    return f"the {' '.join(relation)} of {h} {'are' if plural else 'is'} {t}".rstrip(",")


def relation_template(label: str) -> str:
    """An entity-filled label sentence's template for a relation label, from its name alone:
    the verbalised frame with the entities in place of their types (`/per/org/member_of` ->
    "{head} is a member of {tail}"); zsmie.data.templates fills it."""
    parts = [p for p in label.split("/") if p]
    name = (parts[-1] if parts else label).split(":")[-1]  # `per:spouse`: the relation part
    relation = name.replace("_", " ").replace("-", " ").split()
    if not relation:
        return "{head} and {tail}"
    return _frame([w.lower() for w in relation], "{head}", "{tail}")


def verbalise(label: str, task: str = "mre", abbreviations: Mapping[str, str] | None = None) -> str:
    """The verbalised text of one label (see the module docstring)."""
    parts = [p for p in label.split("/") if p]
    if not parts:
        return label
    relation = parts[-1].replace("_", " ").replace("-", " ").split()
    if task != "mre" or not relation:
        return " ".join(relation) or label
    abbreviations = abbreviations or {}
    types = [abbreviations.get(p, p.replace("_", " ")) for p in parts[:-1]]
    head = types[0] if types else None
    tail = types[-1] if len(types) > 1 else None
    return relation_sentence([w.lower() for w in relation], head, tail)
