"""Slack messages and files as team-knowledge documents: their text, author, channel visibility, permalink, bytes.

- A message's source is "slack:TEAM:CHANNEL:TS" and a file shared with it "<that source>/file:FILE_ID", so that
  deleting the message removes its files too. Its text is read as a question is (`Directory.question`: mentions
  by name, links as "label (url)", Slack's escapes undone); its author is the display name (users.info, cached).
- A private channel's documents (and anything else but a public channel) are `PRIVATE`: only questions asked there
  see them. conversations.info tells (scopes `channels:read`, `groups:read`); a channel whose kind cannot be read
  is taken as private: never wider than it should be.
- Permalinks: chat.getPermalink (Tier 4) once per workspace shows where its archives are
  (`https://acme.slack.com/archives/`); every other link is built the way Slack builds them, since a backfill
  indexes messages by the thousand. A workspace whose links look otherwise gets chat.getPermalink for each.
- Files are downloaded from `url_private_download` with the bot token, and only from Slack's own hosts (or the
  host of SLACK_API_URL): the token never goes anywhere else. Redirects are not followed (Slack answers a token
  that may not read the file with a redirect to its sign-in page), and a download stops at the size limit.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from adapters.base import ApiObserver
from adapters.pacing import RetryLater
from adapters.slack.api import PLATFORM, SlackApi, SlackCallError
from adapters.slack.directory import Directory
from moa.knowledge import Document, Kind, Visibility
from moa.knowledge.extract import MB, Skipped

log = logging.getLogger("adapters.slack")

Json = Mapping[str, Any]

_TS = re.compile(r"^\d{1,12}\.\d{6}$")
_PERMALINK = re.compile(r"^(https://[^/?#\s]+/archives/)([A-Z0-9]+)/p(\d{1,12})(\d{6})(?:[?#].*)?$")
_SLACK_HOSTS = ("slack.com", "slack-gov.com")
# Files Slack does not host, or no longer shows: nothing to download.
_NOT_HOSTED = frozenset({"external", "tombstone", "hidden_by_limit"})
CHANNEL_CACHE = 1_000


@dataclass(frozen=True)
class SharedFile:
    document: Document  # its text is empty until the file is read
    url: str
    size: int  # as Slack gives it; the download stops at the limit whatever it says


def message_source(team: str, channel: str, ts: str) -> str:
    return f"{PLATFORM}:{team}:{channel}:{ts}"


def file_source(message: str, file_id: str) -> str:
    return f"{message}/file:{file_id}"


def valid_ts(value: object) -> str:
    """A message ts as Slack writes them ("1700000000.000100"), or "" for anything else."""
    return value if isinstance(value, str) and _TS.match(value) else ""


class Permalinks:
    def __init__(self, api: SlackApi) -> None:
        self._api = api
        self._base = ""  # where this workspace's archives are, once chat.getPermalink has shown it

    async def of(self, channel: str, ts: str, thread_ts: str = "") -> str:
        """A message's permalink (a thread reply's names its thread, as Slack's do)."""
        if not self._base:
            return await self.exact(channel, ts)
        link = f"{self._base}{channel}/p{ts.replace('.', '')}"
        return f"{link}?thread_ts={thread_ts}&cid={channel}" if thread_ts else link

    async def exact(self, channel: str, ts: str) -> str:
        """chat.getPermalink itself ("" when Slack cannot give one); it also learns the workspace's archives."""
        try:
            answer = await self._api.call("chat.getPermalink", channel=channel, message_ts=ts)
        except (SlackCallError, RetryLater) as exc:
            log.info("no permalink for %s in %s: %s", ts, channel, exc)
            return ""
        link = str(answer.get("permalink") or "")
        match = _PERMALINK.match(link)
        if match is not None and match.group(2) == channel and f"{match.group(3)}.{match.group(4)}" == ts:
            self._base = match.group(1)
        return link


class Documents:
    """Builds the documents of one Slack app's knowledge channels (and the facts a ✅ needs)."""

    def __init__(
        self,
        api: SlackApi,
        directory: Directory,
        observer: ApiObserver,
        *,
        bot_token: str,
        api_url: str,
        max_file_bytes: int,
        timeout_s: float,
    ) -> None:
        self._api = api
        self._directory = directory
        self._observer = observer
        self._bot_token = bot_token
        self._api_host = urlsplit(api_url).hostname or ""
        self._max_file_bytes = max_file_bytes
        self._timeout_s = timeout_s
        self.links = Permalinks(api)
        self._private: dict[str, bool] = {}
        self.bot_user_id = ""  # the bot's own user: its mention is left out of texts, a ✅ counts on its messages
        self._session: aiohttp.ClientSession | None = None

    def connect(self, session: aiohttp.ClientSession, bot_user_id: str) -> None:
        """The adapter's HTTP session (for downloads) and who the bot is, once it has started."""
        self._session, self.bot_user_id = session, bot_user_id

    async def private(self, channel: str) -> bool:
        """Anything but a public channel (private channels, DMs, group DMs): conversations.info, cached."""
        known = self._private.get(channel)
        if known is not None:
            return known
        if channel.startswith("D"):  # a direct message: no need to ask (nor the im:read scope)
            return True
        try:
            info = (await self._api.call("conversations.info", channel=channel)).get("channel") or {}
        except (SlackCallError, RetryLater) as exc:
            log.warning(
                "could not tell whether %s is a private channel (%s); its knowledge is kept to it",
                channel,
                exc,
            )
            if isinstance(exc, SlackCallError) and not exc.retryable:  # e.g. missing_scope: said once
                self._remember(channel, True)
            return True
        private = bool(
            info.get("is_private") or info.get("is_im") or info.get("is_mpim") or info.get("is_group")
        )
        self._remember(channel, private)
        return private

    def _remember(self, channel: str, private: bool) -> None:
        if len(self._private) > CHANNEL_CACHE:
            self._private.clear()
        self._private[channel] = private

    async def message(self, team: str, channel: str, message: Json) -> Document | None:
        """A person's message as a document; None for one without a ts."""
        ts = valid_ts(message.get("ts"))
        if not ts:
            return None
        thread = valid_ts(message.get("thread_ts"))
        thread = "" if thread == ts else thread
        user = str(message.get("user") or "")
        names = await self._directory.names({user}) if user else {}
        text = await self._directory.question(str(message.get("text") or ""), bot_user_id=self.bot_user_id)
        return Document(
            source=message_source(team, channel, ts),
            kind=Kind.MESSAGE,
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            text=text,
            visibility=Visibility.PRIVATE if await self.private(channel) else Visibility.PUBLIC,
            author=names.get(user, user),
            created_at=float(ts),
            link=await self.links.of(channel, ts, thread),
            thread=thread,
        )

    async def file(self, shared_with: Document, file: Json) -> SharedFile | Skipped:
        """A file shared with a message: its document (titled with its name), where to download it, its size."""
        file_id = str(file.get("id") or "")
        if not file_id:
            return Skipped("no file id")
        if file.get("file_access") == "check_file_info" or not file.get("url_private_download"):
            # Slack sends some file objects without their details: files.info (Tier 4) has them
            try:
                file = (await self._api.call("files.info", file=file_id)).get("file") or {}
            except (SlackCallError, RetryLater) as exc:
                return Skipped(f"files.info failed: {exc}")
        if file.get("mode") in _NOT_HOSTED or file.get("is_external"):
            return Skipped("not a file Slack hosts")
        name = str(file.get("name") or file.get("title") or file_id)
        document = replace(
            shared_with,
            source=file_source(shared_with.source, file_id),
            kind=Kind.FILE,
            title=name,
            text="",
            link=str(file.get("permalink") or shared_with.link),
        )
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        size = file.get("size")
        return SharedFile(document, url, size if isinstance(size, int) else 0)

    async def download(self, url: str) -> bytes | Skipped:
        """A file's bytes with the bot token, up to the size limit."""
        if self._session is None or not self._trusted(url):
            return Skipped("not a Slack file address")
        outcome = "error"
        try:
            async with (
                asyncio.timeout(self._timeout_s * 3),
                self._session.get(
                    url, headers={"Authorization": f"Bearer {self._bot_token}"}, allow_redirects=False
                ) as response,
            ):
                if response.status != 200:
                    why = (
                        "the bot may not read it (is files:read granted?)"
                        if response.status < 400
                        else "gone"
                    )
                    return Skipped(f"download refused (HTTP {response.status}): {why}")
                data = bytearray()
                async for piece in response.content.iter_chunked(64 * 1024):
                    data += piece
                    if len(data) > self._max_file_bytes:
                        outcome = "ok"
                        return Skipped(f"larger than the limit of {self._max_file_bytes / MB:g} MB")
                outcome = "ok"
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Skipped(f"download failed ({type(exc).__name__})")
        finally:
            self._observer.api_call(PLATFORM, "files.download", outcome)

    def _trusted(self, url: str) -> bool:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("https", "http") or not host:
            return False
        slack = host in _SLACK_HOSTS or host.endswith(tuple(f".{h}" for h in _SLACK_HOSTS))
        return (slack and parts.scheme == "https") or host == self._api_host
