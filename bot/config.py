"""Settings, read once from the environment (and a `.env` file in the working directory) at the edge."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapters.openai_api.keys import ApiKey
from moa.errors import ConfigError
from moa.knowledge.model import NoSources
from moa.policy import UserRate
from moa.presets import load_catalog
from moa.persistence import HistoryBudget
from storage.postgres.connection import PostgresUrl, is_postgres_url

DEFAULT_DB = Path("data/moa.sqlite3")

MIN_API_KEY_CHARS = 16


def new_replica_id() -> str:
    """This process's id among the replicas serving one database: its host (a container's id, a pod's name) and a
    random part, new at every start, so that a restarted process never mistakes a dead one's runs for its own."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Settings:
    together_api_key: str | None = None
    together_base_url: str | None = None
    preset: str = "default"
    config_path: Path | None = None
    db_path: Path = DEFAULT_DB  # the SQLite file, when MOA_DB is not a PostgreSQL URL
    db_url: str | None = None  # MOA_DB=postgresql://...
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    log_format: str = "text"
    max_question_chars: int = 16_000
    knowledge_channels: frozenset[str] = frozenset()
    system_prompt: str = ""  # MOA_SYSTEM_PROMPT: standing instructions for every model (wins over the TOML file's)
    knowledge_backfill_days: int = 365
    knowledge_max_file_mb: float = 10.0
    knowledge_curators: frozenset[str] = frozenset()
    knowledge_no_sources: NoSources = NoSources.ANSWER
    embedding_model: str | None = None
    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    user_rate: UserRate = field(default_factory=UserRate)
    retention_days: float = 90.0
    history: HistoryBudget = field(default_factory=HistoryBudget)
    max_concurrent: int = 8
    recover_max_age_s: float = 600.0
    shutdown_grace_s: float = 30.0
    heartbeat_s: float = 5.0  # MOA_HEARTBEAT_S: how often a replica says it is alive
    takeover_after_s: float = 30.0  # MOA_TAKEOVER_AFTER_S: silence after which others answer its runs again
    replica_id: str = field(default_factory=new_replica_id)
    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_streaming: bool = True  # SLACK_STREAMING=off: answers are edited in place, never natively streamed
    discord_bot_token: str | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_api_base_set: bool = False
    discord_gateway_url: str | None = None
    discord_guild_ids: tuple[int, ...] = ()
    discord_shard_count: int | None = None  # DISCORD_SHARD_COUNT; None: as many as Discord recommends
    discord_shard_ids: tuple[int, ...] | None = None  # DISCORD_SHARD_IDS: this replica's shards; None: all
    api_keys: tuple[ApiKey, ...] = ()  # the OpenAI-compatible API is served when there is at least one

    @property
    def database(self) -> str | Path:
        """What MOA_DB names, for `storage.open_store`: a PostgreSQL URL or a SQLite file."""
        return self.db_url or self.db_path

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line or an error message."""
        values = (
            self.together_api_key,
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.discord_bot_token,
            *(key.secret for key in self.api_keys),
            PostgresUrl(self.db_url).password if self.db_url else None,
        )
        return tuple(v for v in values if v)


def load_settings(environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")) -> Settings:
    """Settings from `environ` (default: the process environment, after reading `dotenv` if it exists)."""
    if environ is None:
        if dotenv is not None and dotenv.is_file():
            from dotenv import load_dotenv

            load_dotenv(dotenv, override=False)  # the real environment wins over the file
        environ = os.environ
    env = {k: v.strip() for k, v in environ.items() if v.strip()}
    reader = _Reader(env)
    config_path = Path(env["MOA_CONFIG"]) if "MOA_CONFIG" in env else None
    db_path, db_url = reader.database("MOA_DB")
    settings = Settings(
        together_api_key=env.get("TOGETHER_API_KEY"),
        together_base_url=reader.url("TOGETHER_BASE_URL"),
        preset=env.get("MOA_PRESET", "default"),
        config_path=config_path,
        db_path=db_path,
        db_url=db_url,
        http_host=env.get("MOA_HTTP_HOST", "127.0.0.1"),
        http_port=reader.integer("MOA_HTTP_PORT", 8080, low=0, high=65535),
        log_level=reader.choice("MOA_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
        log_format=reader.choice("MOA_LOG_FORMAT", "text", ("text", "json")),
        max_question_chars=reader.integer("MOA_MAX_QUESTION_CHARS", 16_000, low=1),
        knowledge_channels=reader.ids("MOA_KNOWLEDGE_CHANNELS"),
        system_prompt=env.get("MOA_SYSTEM_PROMPT", "").replace("\\n", "\n"),
        knowledge_backfill_days=reader.integer("MOA_KNOWLEDGE_BACKFILL_DAYS", 365, low=0),
        knowledge_max_file_mb=reader.number("MOA_KNOWLEDGE_MAX_FILE_MB", 10.0, low=0.0),
        knowledge_curators=reader.ids("MOA_KNOWLEDGE_CURATORS"),
        knowledge_no_sources=NoSources(
            reader.choice("MOA_KNOWLEDGE_NO_SOURCES", NoSources.ANSWER.value, tuple(m.value for m in NoSources))
        ),
        embedding_model=env.get("MOA_EMBEDDING_MODEL"),
        allowed_channels=reader.ids("MOA_ALLOWED_CHANNELS"),
        allowed_users=reader.ids("MOA_ALLOWED_USERS"),
        user_rate=reader.parsed("MOA_USER_RATE", "20/hour", UserRate.parse),
        retention_days=reader.number("MOA_RETENTION_DAYS", 90.0, low=0.0),
        history=reader.parsed("MOA_HISTORY_BUDGET", "24000 chars", HistoryBudget.parse),
        max_concurrent=reader.integer("MOA_MAX_CONCURRENT", 8, low=1),
        recover_max_age_s=reader.number("MOA_RECOVER_MAX_AGE_S", 600.0, low=0.0),
        shutdown_grace_s=reader.number("MOA_SHUTDOWN_GRACE_S", 30.0, low=0.0),
        heartbeat_s=reader.number("MOA_HEARTBEAT_S", 5.0, low=0.1),
        takeover_after_s=reader.number("MOA_TAKEOVER_AFTER_S", 30.0, low=0.3),
        slack_bot_token=env.get("SLACK_BOT_TOKEN"),
        slack_app_token=env.get("SLACK_APP_TOKEN"),
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET"),
        slack_api_url=reader.url("SLACK_API_URL") or "https://slack.com/api/",
        slack_streaming=reader.choice("SLACK_STREAMING", "on", ("on", "off")) == "on",
        discord_bot_token=env.get("DISCORD_BOT_TOKEN"),
        discord_api_base=(reader.url("DISCORD_API_BASE") or "https://discord.com/api/v10").rstrip("/"),
        discord_api_base_set="DISCORD_API_BASE" in env,
        discord_gateway_url=reader.url("DISCORD_GATEWAY_URL", schemes=("ws://", "wss://")),
        discord_guild_ids=reader.guild_ids("DISCORD_GUILD_IDS"),
        discord_shard_count=reader.integer("DISCORD_SHARD_COUNT", 0, low=1) or None,
        discord_shard_ids=reader.shard_ids("DISCORD_SHARD_IDS"),
        api_keys=_api_keys(env, config_path),
    )
    if settings.slack_bot_token and not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET: required in HTTP mode (SLACK_BOT_TOKEN set without SLACK_APP_TOKEN); set it to "
            "the app's signing secret, or set SLACK_APP_TOKEN (xapp-...) to use Socket Mode"
        )
    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN: an app-level token starts with 'xapp-'; create one with connections:write")
    _check_replicas(settings)
    return settings


def _check_replicas(settings: Settings) -> None:
    if settings.takeover_after_s < 3 * settings.heartbeat_s:
        # a replica a beat or two late (a busy loop, a slow write) must not look dead
        raise ConfigError(
            f"MOA_TAKEOVER_AFTER_S: {settings.takeover_after_s:g} s is too short for a heartbeat every "
            f"{settings.heartbeat_s:g} s (MOA_HEARTBEAT_S); make it at least three heartbeats, "
            f"{3 * settings.heartbeat_s:g} s"
        )
    shards = settings.discord_shard_ids
    if shards is None:
        return
    if settings.discord_shard_count is None:
        raise ConfigError(
            "DISCORD_SHARD_IDS: needs DISCORD_SHARD_COUNT, the number of shards all replicas together run "
            "(DISCORD_SHARD_COUNT=4 with DISCORD_SHARD_IDS=0,1 on one replica and 2,3 on the other)"
        )
    beyond = [i for i in shards if i >= settings.discord_shard_count]
    if beyond:
        raise ConfigError(
            f"DISCORD_SHARD_IDS: shard {beyond[0]} does not exist with DISCORD_SHARD_COUNT="
            f"{settings.discord_shard_count} (shards are numbered from 0 to {settings.discord_shard_count - 1})"
        )


def _api_keys(env: Mapping[str, str], config_path: Path | None) -> tuple[ApiKey, ...]:
    """MOA_API_KEYS (comma-separated, named after their digests), then the file's [api.keys.NAME] tables."""
    found = [(ApiKey.unnamed(k.strip()), "MOA_API_KEYS") for k in env.get("MOA_API_KEYS", "").split(",") if k.strip()]
    declared = load_catalog(config_path).api_keys if config_path is not None else {}
    for config in declared.values():
        secret = env.get(config.key_env)
        if secret is None:
            raise ConfigError(
                f"{config.key_env}: not set, and [api.keys.{config.name}] in {config_path} names it as the "
                "variable holding that key; set it, or remove the table"
            )
        found.append((ApiKey(config.name, secret, config.rate, config.scope), config.key_env))
    seen: set[str] = set()
    for key, variable in found:
        if len(key.secret) < MIN_API_KEY_CHARS:
            raise ConfigError(
                f"{variable}: an API key must be at least {MIN_API_KEY_CHARS} characters long; make one with "
                "`openssl rand -hex 24`"
            )
        if key.secret in seen:
            raise ConfigError(f"{variable}: the same API key is given twice; give each client a key of its own")
        seen.add(key.secret)
    return tuple(key for key, _ in found)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def integer(self, name: str, default: int, *, low: int | None = None, high: int | None = None) -> int:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: {raw!r} is not a whole number; set it like {name}={default}") from None
        self._bounds(name, value, low, high)
        return value

    def number(self, name: str, default: float, *, low: float | None = None) -> float:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}: {raw!r} is not a number; set it like {name}={default:g}") from None
        self._bounds(name, value, low, None)
        return value

    @staticmethod
    def _bounds(name: str, value: float, low: float | None, high: float | None) -> None:
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"between {low:g} and {high:g}" if high is not None else f"{low:g} or more"
            raise ConfigError(f"{name}: {value:g} is out of range; it must be {span}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        raw = self.env.get(name, default)
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(f"{name}: {raw!r} is not one of {', '.join(allowed)}")
        return value

    def ids(self, name: str) -> frozenset[str]:
        return frozenset(part.strip() for part in self.env.get(name, "").split(",") if part.strip())

    def guild_ids(self, name: str) -> tuple[int, ...]:
        ids = self.ids(name)
        if not all(i.isdigit() for i in ids):
            raise ConfigError(f"{name}: guild ids are numbers, comma-separated, like 123456789012345678")
        return tuple(sorted(int(i) for i in ids))

    def shard_ids(self, name: str) -> tuple[int, ...] | None:
        ids = self.ids(name)
        if not ids:
            return None
        if not all(i.isdigit() for i in ids):
            raise ConfigError(f"{name}: shard ids are numbers from 0, comma-separated, like 0,1")
        return tuple(sorted(int(i) for i in ids))

    def url(self, name: str, *, schemes: tuple[str, ...] = ("http://", "https://")) -> str | None:
        raw = self.env.get(name)
        if raw is not None and not raw.startswith(schemes):
            raise ConfigError(f"{name}: {raw!r} is not a URL; it must start with {' or '.join(schemes)}")
        return raw

    def database(self, name: str) -> tuple[Path, str | None]:
        """(the SQLite file, None), or (the default file, the URL) for PostgreSQL."""
        raw = self.env.get(name)
        if raw is None:
            return DEFAULT_DB, None
        if is_postgres_url(raw):
            try:
                PostgresUrl.parse(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"{name}: not a usable PostgreSQL URL: {exc}; like postgresql://user:password@host:5432/database"
                ) from None
            return DEFAULT_DB, raw
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", raw)
        if scheme:  # not echoed whole: a URL can hold a password
            raise ConfigError(
                f"{name}: {scheme[1]}:// is not a database moa-bot uses; give a SQLite file path (data/moa.sqlite3) "
                "or a PostgreSQL URL (postgresql://user:password@host:5432/database)"
            )
        return Path(raw), None

    def parsed(self, name: str, default: str, parse):  # type: ignore[no-untyped-def]
        raw = self.env.get(name, default)
        try:
            return parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
