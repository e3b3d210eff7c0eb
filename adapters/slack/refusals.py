"""Where Slack refused an optional feature (native streaming, the thread status), so later answers skip it there.

A refusal names a whole workspace when the error is about the app (its token, its scopes, a method the workspace
does not offer), else the one channel. Errors that may pass are never remembered: Slack's side failing or not
answering, a rate limit, and "the bot cannot post here", which the plain message that follows meets as well.
"""

from __future__ import annotations

import logging

from adapters.slack.api import SlackCallError

log = logging.getLogger("adapters.slack")

WORKSPACE_ERRORS = frozenset(
    {
        "method_not_supported",
        "not_allowed_token_type",
        "unknown_method",
        "missing_scope",
        "not_allowed",
        "feature_not_enabled",
        "team_not_allowed",
        "not_agent_app",
    }
)
_NOT_REMEMBERED = frozenset({"not_in_channel", "channel_not_found", "is_archived", "ratelimited"})


class Refusals:
    def __init__(self, feature: str, consequence: str) -> None:
        """`feature` and `consequence` name them in the log: "native streaming", "answers there are edited in
        place instead"."""
        self._feature = feature
        self._consequence = consequence
        self._teams: set[str] = set()
        self._channels: set[tuple[str, str]] = set()

    def refused(self, team: str, channel: str) -> bool:
        return team in self._teams or (team, channel) in self._channels

    def remember(self, team: str, channel: str, error: SlackCallError) -> None:
        if error.retryable or error.error in _NOT_REMEMBERED:
            log.info("%s failed in %s (%s); trying again with the next answer", self._feature, channel, error)
            return
        if error.error in WORKSPACE_ERRORS:
            self._teams.add(team)
            where = f"workspace {team}"
        else:
            self._channels.add((team, channel))
            where = f"channel {channel}"
        log.warning(
            "%s refused in %s (%s): %s from now on", self._feature, where, error.error, self._consequence
        )
