"""The fake Slack's file downloads: a file object's `url_private` and `url_private_download`.

As on files.slack.com, a download needs `Authorization: Bearer <token>` with a token that may read the file
(the bot token, for a file shared where the bot reads). Anything else is redirected (302) to the workspace's
sign-in page, which answers 200 with HTML: a client that follows redirects and does not check the
content type stores a login page, as happens with real Slack. A file's bytes come with its `mimetype` and
`Content-Length` equal to its `size`; `url_private_download` adds `Content-Disposition: attachment`.
Every attempt is recorded in `downloads`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from tests.fakes.slack.state import SlackState

Json = dict[str, Any]

LOGIN_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><title>Sign in | Slack</title></head>'
    '<body><h1>Sign in to {team}</h1><form action="/signin" method="post"></form></body></html>'
)


class FileDownloads:
    """Serves `/files-pri/{team}-{file}/[download/]{name}` and the sign-in page unauthorized calls land on."""

    def __init__(self, state: SlackState, *, token: Callable[[], str]) -> None:
        self.state = state
        self._token = token  # the bot token now (a test may change it)
        self.downloads: list[Json] = []  # {file_id, authorized, download, status}

    def mount(self, app: web.Application) -> None:
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._download)
        app.router.add_get("/files-pri/{team_file}/{name}", self._view)
        app.router.add_get("/", self._sign_in)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, download=False)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request, download=True)

    def _serve(self, request: web.Request, *, download: bool) -> web.StreamResponse:
        team, _, file_id = request.match_info["team_file"].partition("-")
        rec = self.state.files.get(file_id)
        found = rec is not None and team == self.state.team_id and rec["name"] == request.match_info["name"]
        authorized = request.headers.get("Authorization") == f"Bearer {self._token()}"
        record: Json = {"file_id": file_id, "authorized": authorized, "download": download}
        self.downloads.append(record)
        if not found or rec is None or rec["deleted"]:
            record["status"] = 404
            return web.Response(status=404, text="File not found")
        if not authorized or not self.state.file_visible(file_id):
            # Slack's answer to a missing or insufficient token: off to the sign-in page.
            record["status"] = 302
            raise web.HTTPFound(
                f"/?redir={quote(request.path, safe='')}", headers={"x-slack-meta": "?;acl_fail"}
            )
        record["status"] = 200
        headers = {"Content-Type": self.state.file_object(file_id)["mimetype"]}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{rec["name"]}"'
        return web.Response(body=rec["content"], headers=headers)

    async def _sign_in(self, request: web.Request) -> web.Response:
        return web.Response(text=LOGIN_PAGE.format(team=self.state.team_name), content_type="text/html")
