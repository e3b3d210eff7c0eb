"""Which Discord messages and commands are questions, and where their conversations live.

Conversation keys: (discord, guild id or "@dm", channel or thread id). A thread is its own conversation; a
mention or knowledge-channel message at the top of a channel opens a thread on the message, whose id equals the
message's, so the key is known before the thread exists. A `/moa` outside a thread is a conversation of its own
(the interaction id is its thread part), so two slash questions in one channel never share history.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import discord

from adapters.discord.api import PLATFORM
from adapters.discord.formatting import question_text, thread_name
from moa.conversation import ConversationKey

DM_WORKSPACE = "@dm"
_ASKING_TYPES = (discord.MessageType.default, discord.MessageType.reply)


@dataclass(frozen=True)
class Target:
    """Where a question's conversation lives and how its answer is placed."""

    key: ConversationKey
    text: str
    parent_channel: str = ""  # a thread's channel, for allow-lists
    open_thread: bool = False  # start a thread on the message and answer there
    thread_name: str = ""
    unprompted: bool = False  # answered only because it was posted in a knowledge channel (or its thread)


def is_from_a_person(message: discord.Message) -> bool:
    """False for the bot itself, other bots, webhooks and system messages (thread created, pins...)."""
    return not message.author.bot and message.webhook_id is None and message.type in _ASKING_TYPES


def addresses_bot(message: discord.Message, bot_id: int, bot_role_id: int | None) -> bool:
    """A mention of the bot (its user or its role; not @everyone) or a reply to one of its messages."""
    if any(user.id == bot_id for user in message.mentions):
        return True
    if bot_role_id is not None and any(role.id == bot_role_id for role in message.role_mentions):
        return True
    reference = message.reference
    replied = reference.resolved if reference is not None else None
    return isinstance(replied, discord.Message) and replied.author.id == bot_id


def classify(
    message: discord.Message,
    channel: object,
    *,
    bot_id: int,
    bot_role_id: int | None,
    knowledge_channels: Collection[str],
) -> Target | None:
    """The question a person's message asks, or None when the bot should stay quiet.

    `channel` is the message's channel as resolved by the caller (a thread discord.py had not cached is
    fetched first, so threads are recognized).
    """
    addressed = addresses_bot(message, bot_id, bot_role_id)
    names = {user.id: user.display_name for user in message.mentions}
    text = question_text(message.content, bot_id, names, bot_role_id)
    if message.guild is None:
        # a direct message: every message is a question, and the DM is one conversation
        return Target(ConversationKey(PLATFORM, DM_WORKSPACE, str(message.channel.id)), text)
    guild = str(message.guild.id)
    if isinstance(channel, discord.Thread):
        parent = str(channel.parent_id)
        # in a knowledge channel's threads nobody has to mention the bot; empty messages (a picture) are left alone
        if not addressed and not (parent in knowledge_channels and text):
            return None
        key = ConversationKey(PLATFORM, guild, str(channel.id))
        return Target(key, text, parent_channel=parent, unprompted=not addressed)
    channel_id = str(message.channel.id)
    if not addressed and not (channel_id in knowledge_channels and text):
        return None
    if isinstance(channel, discord.TextChannel):  # text and announcement channels take threads
        fallback = f"Question from {message.author.display_name}"
        return Target(
            ConversationKey(PLATFORM, guild, str(message.id)),
            text,
            parent_channel=channel_id,
            open_thread=True,
            thread_name=thread_name(text, fallback),
            unprompted=not addressed,
        )
    # voice-channel chats and the like have no threads: answer in place, as a conversation of its own
    return Target(ConversationKey(PLATFORM, guild, channel_id, str(message.id)), text, unprompted=not addressed)


def interaction_target(interaction: discord.Interaction, question: str) -> Target:
    """Where a `/moa` question lives: its thread's conversation, the DM's, or a new one of its own."""
    channel = interaction.channel
    channel_id = str(interaction.channel_id)
    if interaction.guild_id is None:
        return Target(ConversationKey(PLATFORM, DM_WORKSPACE, channel_id), question.strip())
    guild = str(interaction.guild_id)
    if isinstance(channel, discord.Thread):
        return Target(
            ConversationKey(PLATFORM, guild, channel_id),
            question.strip(),
            parent_channel=str(channel.parent_id),
        )
    return Target(ConversationKey(PLATFORM, guild, channel_id, str(interaction.id)), question.strip())


def forget_target(interaction: discord.Interaction) -> ConversationKey | None:
    """The conversation `/moa-forget` deletes: its thread's or the DM's; None elsewhere."""
    if interaction.guild_id is None:
        return ConversationKey(PLATFORM, DM_WORKSPACE, str(interaction.channel_id))
    if isinstance(interaction.channel, discord.Thread):
        return ConversationKey(PLATFORM, str(interaction.guild_id), str(interaction.channel_id))
    return None
