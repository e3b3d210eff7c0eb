"""Team knowledge: answers grounded in the team's own messages and documents, with cited sources.

No SQL and no platform code here: `storage.Store` implements `KnowledgeIndex`; adapters and the CLI go through
the `Librarian`.
"""

from moa.knowledge.librarian import AddReport, Librarian, Verification
from moa.knowledge.model import (
    Audience,
    Cursor,
    Document,
    KnowledgeIndex,
    Kind,
    Passage,
    Upsert,
    Visibility,
)

__all__ = [
    "AddReport",
    "Audience",
    "Cursor",
    "Document",
    "Kind",
    "KnowledgeIndex",
    "Librarian",
    "Passage",
    "Upsert",
    "Verification",
    "Visibility",
]
