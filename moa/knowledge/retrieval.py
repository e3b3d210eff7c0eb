"""Which passages an answer gets: the query, the relevance floor, the caps, the order.

The query is the question plus a short window of the thread (so "and on staging?" still finds the deploy notes
discussed just before). Full-text candidates must contain enough of the question's own key terms (the floor);
vector candidates enough similarity. With vectors, the two rankings are merged by reciprocal rank fusion.
Then at most two passages per document, the top six; verified answers first and newer passages first on ties.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from moa.events import Message
from moa.knowledge.model import Passage

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or other
    our ours out over own same she should so some such than that the their theirs them then there these they this
    those through to too under until up very was we were what when where which while who whom why will with would
    you your yours yourself also get got us let lets please tell know anyone someone hey hi thanks thank does doesn
    don isn aren wasn weren haven hasn didn won wouldn shouldn couldn im ive id youre were""".split()
)
_WORD = re.compile(r"\w+")
MAX_TERMS = 24
KEY_LENGTH = 5  # terms match on their first five letters (a crude stem: "rotate", "rotating", "rotation")


@dataclass(frozen=True)
class RetrievalPolicy:
    top_k: int = 6
    per_document: int = 2
    # a full-text passage must contain this share of the question's key terms (and at least one)
    min_coverage: float = 0.34
    # a vector passage must be at least this similar (cosine) to the query
    min_similarity: float = 0.5
    candidates: int = 50  # asked of the full-text search before the floor and the caps
    vector_candidates: int = 20  # asked of the vector search (its cost grows with the number asked)
    verified_boost: float = 1.5  # a verified answer outranks an ordinary passage that matches as well
    window_messages: int = 2  # the thread's last messages added to the query
    window_chars: int = 500
    rrf_k: int = 60  # reciprocal rank fusion's constant (Cormack et al., 2009)


@dataclass(frozen=True)
class Query:
    text: str  # what is embedded for the vector search
    terms: tuple[str, ...]  # full-text terms: the question's, then the thread window's
    key_terms: tuple[str, ...]  # the question's own: what the floor measures

    @property
    def empty(self) -> bool:
        return not self.terms


def terms_of(text: str) -> list[str]:
    """Distinct lower-case words of `text` that carry meaning, in order."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        word = word.strip("_")
        if len(word) < 2 or word in STOPWORDS:
            continue
        seen.setdefault(word, None)
    return list(seen)


def build_query(question: str, window: Sequence[Message] = (), policy: RetrievalPolicy = RetrievalPolicy()) -> Query:
    recent = [m["content"] for m in window[-policy.window_messages :]] if policy.window_messages else []
    context = " ".join(recent)[-policy.window_chars :]
    key = terms_of(question)
    terms = list(dict.fromkeys([*key, *terms_of(context)]))[:MAX_TERMS]
    text = f"{context}\n{question}".strip()
    return Query(text, tuple(terms), tuple(key[:MAX_TERMS] or terms))


def _key(term: str) -> str:
    if len(term) > 3 and term.endswith("s"):
        term = term[:-1]
    return term[:KEY_LENGTH]


def coverage(query: Query, passage: Passage) -> float:
    """The share of the question's key terms found in the passage (its title included)."""
    wanted = {_key(t) for t in query.key_terms}
    if not wanted:
        return 0.0
    found = {_key(t) for t in terms_of(f"{passage.title} {passage.text}")}
    return len(wanted & found) / len(wanted)


def rank(
    query: Query,
    text_hits: Sequence[Passage],
    vector_hits: Sequence[Passage] = (),
    policy: RetrievalPolicy = RetrievalPolicy(),
) -> list[Passage]:
    """The passages to give the models, best first."""
    lexical = [
        _boosted(p, policy)
        for p in text_hits
        if (share := coverage(query, p)) >= policy.min_coverage and share > 0
    ]
    semantic = [
        _boosted(p, policy) for p in vector_hits if p.similarity is not None and p.similarity >= policy.min_similarity
    ]
    if vector_hits:
        merged = fuse([sorted(lexical, key=_order), sorted(semantic, key=_order)], policy.rrf_k)
    else:
        merged = lexical
    return cap(sorted(merged, key=_order), policy.per_document, policy.top_k)


def _boosted(passage: Passage, policy: RetrievalPolicy) -> Passage:
    if not passage.verified:
        return passage
    similarity = passage.similarity
    return replace(passage, score=passage.score * policy.verified_boost,
                   similarity=None if similarity is None else similarity * policy.verified_boost)


def _order(passage: Passage) -> tuple[float, bool, float]:
    # equal scores (to 9 significant digits): verified first, then the newer
    return (-float(f"{passage.score:.9g}"), not passage.verified, -passage.created_at)


def fuse(rankings: Sequence[Sequence[Passage]], k: int) -> list[Passage]:
    """Reciprocal rank fusion: each passage scores the sum of 1 / (k + rank) over the rankings it is in."""
    scores: dict[int, float] = {}
    found: dict[int, Passage] = {}
    for ranking in rankings:
        for position, passage in enumerate(ranking, start=1):
            scores[passage.chunk_id] = scores.get(passage.chunk_id, 0.0) + 1.0 / (k + position)
            found.setdefault(passage.chunk_id, passage)
    return [replace(found[chunk], score=score) for chunk, score in scores.items()]


def cap(passages: Sequence[Passage], per_document: int, top_k: int) -> list[Passage]:
    """The first `top_k` passages, keeping at most `per_document` of any one document."""
    kept: list[Passage] = []
    per: dict[str, int] = {}
    for passage in passages:
        if per.get(passage.source, 0) >= per_document:
            continue
        per[passage.source] = per.get(passage.source, 0) + 1
        kept.append(passage)
        if len(kept) == top_k:
            break
    return kept
