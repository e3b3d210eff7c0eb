"""Who may read what: the one rule, as shelves that storage turns into a filter.

- A passage is used only for questions in the same workspace (Slack team, Discord guild).
- A passage from a private channel (a private Slack channel, a Discord channel @everyone cannot read) is used
  only for questions asked in that channel or its threads.
- Direct messages see public knowledge only. A Discord DM has no guild (its workspace is "@dm", where nothing is
  indexed), so it sees the deployment-wide local documents and nothing else; a Slack DM sees its workspace's
  public knowledge.
- Slack's assistant pane is a DM beside a channel: the channel the asker has open there counts as where they ask,
  so its knowledge (private or not: they are looking at it) is theirs to use.
- Local documents are read by the whole deployment, unless added with `--scope CHANNEL`: then only questions in
  that channel (or its threads) see them, on any platform (channel ids of Slack and Discord never collide).
- The terminal (`moa-bot ask`, `chat`) is the operator's, and the OpenAI-compatible API's keys are the
  deployment's: public knowledge of every workspace and the deployment-wide local documents. A key scoped to a
  channel (`[api.keys.NAME] scope = "C0123"`) also sees that channel's knowledge, private or not, and the local
  documents scoped to it. Nothing else a caller sends (the API's `user` field, a thread id) widens what is read.
"""

from __future__ import annotations

from moa.conversation import Question
from moa.knowledge.model import LOCAL, Audience, Document, Passage, Shelf, Visibility

TERMINAL = "console"  # the platform of `moa-bot ask` and `chat`
API = "api"  # the platform of the OpenAI-compatible API
DEPLOYMENT = frozenset({TERMINAL, API})  # audiences of the whole deployment, in no workspace
# local documents added without a scope: channel "" (every audience's shelves include it)
DEPLOYMENT_WIDE = frozenset({""})


def shelves(audience: Audience) -> tuple[Shelf, ...]:
    """Every set of documents `audience` may read. This is the privacy rule; everything else applies it."""
    local = [Shelf(platform=LOCAL, channels=DEPLOYMENT_WIDE)]
    if audience.workspace is None:
        # a scope is a channel on any platform (and its local documents): channel ids never collide
        scoped = [Shelf(channels=audience.channels)] if audience.channels else []
        return (*local, Shelf(visibility=Visibility.PUBLIC), *scoped)
    if audience.channels:
        local.append(Shelf(platform=LOCAL, channels=audience.channels))
    same_workspace = Shelf(platform=audience.platform, workspace=audience.workspace, visibility=Visibility.PUBLIC)
    if audience.is_dm:
        return (*local, same_workspace)
    own_channel = Shelf(platform=audience.platform, workspace=audience.workspace, channels=audience.channels)
    return (*local, same_workspace, own_channel)


def can_see(audience: Audience, item: Document | Passage) -> bool:
    return any(
        shelf.holds(item.platform, item.workspace, item.channel, item.visibility) for shelf in shelves(audience)
    )


def audience_of(question: Question) -> Audience:
    """Who asks `question`: its workspace, its channel (and a thread's parent channel, or the channel in view
    beside the assistant pane), whether it is a DM (the pane's, with a channel in view, is asked from there)."""
    key = question.key
    if key.platform in DEPLOYMENT:
        # its conversation ids are the caller's to choose; only the configured scope says where it may read
        return Audience(key.platform, None, frozenset({question.context_channel} - {""}))
    channels = frozenset(c for c in (key.channel, question.parent_channel, question.context_channel) if c)
    return Audience(key.platform, key.workspace, channels, question.is_dm and not question.context_channel)
