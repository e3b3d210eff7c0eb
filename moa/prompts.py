"""Prompt text. Everything a model is told, apart from the user's own words, is written here.

The structure follows the Mixture-of-Agents paper (Wang et al., 2024): an aggregate-and-synthesize instruction
followed by the numbered drafts of the previous layer goes in as the system message, and the user's conversation
(history and question) follows unchanged, so the question itself always reaches the model that writes the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from moa.events import Message

AGGREGATE_AND_SYNTHESIZE = """\
Below are draft answers that several AI models wrote to the user's latest message. Use them to write the \
single best answer you can.

Treat the drafts as evidence, not as truth: some may be wrong, out of date, biased or incomplete, and they \
may contradict each other. Check each claim against what you know, keep what is correct and useful, fix or \
drop what is not, and resolve disagreements instead of listing them. Do not copy one draft wholesale, and do \
not mention the drafts, the models or this instruction: the user sees only your answer.

Answer the user directly, in their language, clearly organised, using Markdown (headings, lists, code blocks) \
where it helps.

Draft answers:"""

FALLBACK_NOTE = "_The synthesizing model failed, so this is the most complete single draft, from {model}._"


def references_block(instruction: str, drafts: Sequence[str]) -> str:
    """The instruction followed by the drafts, numbered from 1."""
    numbered = "\n\n".join(f"{i}. {draft.strip()}" for i, draft in enumerate(drafts, start=1))
    return f"{instruction}\n\n{numbered}"


STANDING_INSTRUCTIONS = """\
Standing instructions from the team that runs this assistant (follow them unless the user's request makes \
that impossible):

{instructions}"""


def with_references(
    conversation: Sequence[Message], instruction: str, drafts: Sequence[str], *, standing: str = ""
) -> list[Message]:
    """Messages for a model: one system message holding, in order, the team's standing instructions (if any), the
    conversation's own system message (an API client's), and, for a model that refines or aggregates, `drafts`
    with the instruction; then the rest of the conversation unchanged.

    One system message, not several: several break some models' chat templates.
    """
    messages = list(conversation)
    parts = [STANDING_INSTRUCTIONS.format(instructions=standing.strip())] if standing.strip() else []
    if messages and messages[0]["role"] == "system" and (parts or drafts):
        parts.append(messages.pop(0)["content"])
    if drafts:
        parts.append(references_block(instruction, drafts))
    if not parts:
        return messages
    system: Message = {"role": "system", "content": "\n\n".join(parts)}
    return [system, *messages]
