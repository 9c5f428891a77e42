"""Self-tests of the fake Discord, driven by the real discord.py client (not memebot's bot)."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from PIL import Image

from tests.fakes.discord import FakeDiscord, point_discord_py_at, run_client
from tests.fakes.discord_spec import load_spec

with warnings.catch_warnings():
    # tests.fakes.discord has imported discord already; this only guards a reordering of the imports.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord
    from discord import app_commands
    from discord.ext import commands
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


RED_PNG = _png((255, 0, 0))


class PongView(discord.ui.View):
    """The button under /ping's follow-up: clicking edits that message."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", custom_id="pong:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button[PongView]) -> None:
        await interaction.response.edit_message(content=f"clicked by {interaction.user.name}", view=None)


@app_commands.command(description="Defer, edit the answer, follow up with a picture and a button")
async def ping(interaction: discord.Interaction) -> None:
    await interaction.response.defer(thinking=True)
    await interaction.edit_original_response(content="pong")
    file = discord.File(io.BytesIO(RED_PNG), filename="pong.png")
    await interaction.followup.send("here it is", file=file, view=PongView())


@app_commands.command(description="Send an image back")
@app_commands.describe(image="the image", caption="what to say")
async def upload(interaction: discord.Interaction, image: discord.Attachment, caption: str = "") -> None:
    data = await image.read()
    await interaction.response.send_message(
        caption, file=discord.File(io.BytesIO(data), filename=image.filename)
    )


@upload.autocomplete("caption")
async def caption_choices(interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=word, value=word) for word in ("cat", "car", "dog") if word.startswith(typed)
    ]


@app_commands.command(description="Say where this ran, only to the caller")
async def where(interaction: discord.Interaction) -> None:
    channel = interaction.channel
    nsfw = isinstance(channel, discord.TextChannel) and channel.is_nsfw()
    await interaction.response.send_message(f"{type(channel).__name__} nsfw={nsfw}", ephemeral=True)


@app_commands.command(description="Answer too late")
async def slow(interaction: discord.Interaction) -> None:
    await asyncio.sleep(0.4)
    await interaction.response.defer()


class EchoModal(discord.ui.Modal, title="Echo"):
    """A one-field modal (in a label, the current layout) whose submission is echoed back."""

    words: discord.ui.Label[EchoModal] = discord.ui.Label(
        text="Words", component=discord.ui.TextInput(custom_id="words", default="hello", max_length=20)
    )

    def __init__(self, about: str) -> None:
        super().__init__()
        self.about = about

    async def on_submit(self, interaction: discord.Interaction) -> None:
        assert isinstance(self.words.component, discord.ui.TextInput)
        await interaction.response.send_message(f"{self.words.component.value} about {self.about}")


async def echo_message(interaction: discord.Interaction, message: discord.Message) -> None:
    """The message menu's command: a modal about the message's first attachment."""
    about = message.attachments[0].filename if message.attachments else "nothing"
    await interaction.response.send_modal(EchoModal(about))


class TinyBot(commands.Bot):
    """A minimal bot that syncs its slash commands and records the events that reach it."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            guild_ready_timeout=0.05,
            help_command=None,
        )
        self.seen_messages: list[discord.Message] = []
        self.seen_reactions: list[discord.RawReactionActionEvent] = []
        self.synced: list[app_commands.AppCommand] = []

    async def setup_hook(self) -> None:
        tiny_commands: list[app_commands.Command[Any, ..., None]] = [ping, upload, where, slow]
        for command in tiny_commands:
            self.tree.add_command(command)
        self.tree.add_command(app_commands.ContextMenu(name="Echo", callback=echo_message))
        self.synced = await self.tree.sync()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause before identifying again (discord.py's default, kept for real Discord)."""

    async def on_message(self, message: discord.Message) -> None:
        if self.user is not None and message.author.id != self.user.id:
            self.seen_messages.append(message)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.seen_reactions.append(payload)


@asynccontextmanager
async def running(
    message_content: bool = True, **fake_options: Any
) -> AsyncIterator[tuple[FakeDiscord, TinyBot]]:
    """A fake Discord with a ready TinyBot connected to it."""
    fake_options.setdefault("heartbeat_interval", 0.3)
    async with FakeDiscord(**fake_options) as fake:
        bot = TinyBot(message_content=message_content)
        async with run_client(bot, fake):
            yield fake, bot


@pytest.fixture
async def world() -> AsyncIterator[tuple[FakeDiscord, TinyBot]]:
    async with running() as pair:
        yield pair


async def test_login_registers_commands_and_caches_the_guild(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, bot = world
    first = [(r.method, r.template) for r in fake.requests[:3]]
    assert first == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
        ("PUT", "/applications/{application_id}/commands"),
    ]
    assert sorted(c["name"] for c in fake.commands[None]) == ["Echo", "ping", "slow", "upload", "where"]
    assert {c.id for c in bot.synced} == {int(c["id"]) for c in fake.commands[None]}
    assert bot.application_id == fake.application_id
    guild = bot.get_guild(fake.guild.id)
    assert guild is not None and guild.me is not None
    nsfw = guild.get_channel(fake.channel("nsfw").id)
    assert isinstance(nsfw, discord.TextChannel) and nsfw.is_nsfw()
    assert fake.connections[0].mode == "identify" and fake.connections[0].path.startswith("/gateway")
    fake.assert_clean()


async def test_ping_defers_edits_and_follows_up_with_png_and_button(
    world: tuple[FakeDiscord, TinyBot], caplog: pytest.LogCaptureFixture
) -> None:
    fake, _ = world
    ix = await fake.slash_command("ping", user=fake.bob)
    ack = await ix.acknowledgement()
    assert ack.type == 5 and ack.latency < 3
    followup = await ix.followup()
    assert followup.content == "here it is"
    [attachment] = followup.attachments
    image = attachment.image()
    assert attachment.filename == "pong.png" and image.size == (8, 8)
    assert image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert followup.custom_ids == ["pong:again"]
    original = await ix.wait_original(lambda m: m.content == "pong")
    assert not original.loading and original.history[0]["flags"] & 128
    sent = fake.requests_to("POST", WEBHOOK)[0]
    assert sent.uploads[0].data == RED_PNG and sent.json["attachments"][0]["id"] == 0
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    fake.assert_clean()


async def test_button_click_edits_the_message(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, _ = world
    followup = await (await fake.slash_command("ping")).followup()
    click = await fake.click(followup, "pong:again", user=fake.bob)
    assert (await click.acknowledgement()).type == 7
    assert followup.content == "clicked by bob" and followup.components == []
    assert followup.history[-1]["content"] == "here it is"
    fake.assert_clean()


async def test_upload_reads_the_attachment_option_and_answers_with_the_file(
    world: tuple[FakeDiscord, TinyBot],
) -> None:
    fake, _ = world
    given = fake.store_attachment("in.png", RED_PNG)
    ix = await fake.slash_command("upload", {"image": given, "caption": "echo"})
    ack = await ix.acknowledgement()
    assert ack.type == 4 and ack.attachments[0].data == RED_PNG
    assert ix.original is not None and ix.original.content == "echo"
    with pytest.raises(ValueError, match="needs"):
        await fake.slash_command("upload", {"caption": "no image"})
    fake.assert_clean()


async def test_a_message_menu_opens_a_modal_whose_submission_is_answered(
    world: tuple[FakeDiscord, TinyBot],
) -> None:
    fake, _ = world
    picture = fake.store_attachment("cat.png", RED_PNG)
    target = await fake.post_user_message(fake.channel("memes"), "look", attachments=[picture])
    opened = await fake.message_command("Echo", target, user=fake.bob)
    assert (await opened.acknowledgement()).type == 9
    assert opened.payload["data"]["target_id"] == str(target.id)
    assert opened.modal is not None and opened.modal["title"] == "Echo"
    assert opened.text_inputs()["words"]["value"] == "hello"
    with pytest.raises(ValueError, match="out of the declared bounds"):
        await fake.submit_modal(opened, {"words": "x" * 21})
    with pytest.raises(ValueError, match="no text input"):
        await fake.submit_modal(opened, {"nope": "x"})
    submitted = await fake.submit_modal(opened, {"words": "hi there"})
    assert submitted.user == fake.bob and (await submitted.acknowledgement()).type == 4
    assert submitted.original is not None and submitted.original.content == "hi there about cat.png"
    assert submitted.original.interaction_metadata is not None
    assert submitted.original.interaction_metadata["triggering_interaction_metadata"]["type"] == 2
    with pytest.raises(LookupError, match="no command 'Echo' of type 1"):
        await fake.slash_command("Echo")
    fake.assert_clean()


async def test_a_reply_carries_the_message_it_replies_to(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, bot = world
    memes = fake.channel("memes")
    embed = {"image": {"url": "https://example.com/a.png", "width": 8, "height": 8}}
    earlier = await fake.post_user_message(memes, "an old one", embeds=[embed], announce=False)
    await fake.post_user_message(memes, "this one", author=fake.bob, reply_to=earlier)
    [reply] = await fake.wait_for(lambda: bot.seen_messages, what="on_message")
    assert reply.reference is not None and reply.reference.message_id == earlier.id
    resolved = reply.reference.resolved
    assert isinstance(resolved, discord.Message) and resolved.content == "an old one"
    assert resolved.embeds[0].image.url == "https://example.com/a.png"
    fake.assert_clean()


async def test_where_sees_the_nsfw_channel_and_dms_and_answers_ephemerally(
    world: tuple[FakeDiscord, TinyBot],
) -> None:
    fake, _ = world
    in_nsfw = await fake.slash_command("where", channel_id=fake.channel("nsfw").id)
    in_dm = await fake.slash_command("where", channel_id=fake.dm_channel(fake.bob).id, user=fake.bob)
    for ix in (in_nsfw, in_dm):
        assert (await ix.acknowledgement()).type == 4
    assert in_nsfw.original is not None and in_nsfw.original.content == "TextChannel nsfw=True"
    assert in_dm.original is not None and in_dm.original.content == "DMChannel nsfw=False"
    assert in_dm.original.ephemeral and in_dm.payload["context"] == 1 and "member" not in in_dm.payload
    fake.assert_clean()


async def test_autocomplete_gets_choices(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, _ = world
    ix = await fake.autocomplete("upload", {"caption": "ca"}, focused="caption")
    assert (await ix.acknowledgement()).type == 8
    assert [c["value"] for c in ix.choices] == ["cat", "car"]
    fake.assert_clean()


async def test_rate_limited_followup_is_retried(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, _ = world
    limit = fake.rate_limit("POST", WEBHOOK, retry_after=0.2)
    followup = await (await fake.slash_command("ping")).followup()
    assert followup.attachments[0].data == RED_PNG
    tries = fake.requests_to("POST", WEBHOOK)
    assert [r.status for r in tries] == [429, 200] and len(limit.hits) == 1
    assert tries[1].at - tries[0].at >= 0.2
    fake.assert_clean()


async def test_requests_discord_would_refuse_are_recorded(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, bot = world
    general = fake.channel("general").id
    with pytest.raises(discord.HTTPException) as bad_body:
        await bot.http.request(
            Route("POST", "/channels/{channel_id}/messages", channel_id=general), json={"content": 1}
        )
    assert bad_body.value.status == 400 and bad_body.value.code == 50035
    callback = Route(
        "POST",
        "/interactions/{interaction_id}/{interaction_token}/callback",
        interaction_id=1,
        interaction_token="t",
    )
    with pytest.raises(discord.HTTPException):
        await bot.http.request(callback, json={"type": 99})
    with pytest.raises(discord.NotFound):
        await bot.http.request(Route("GET", "/no/such/{thing}", thing=1))
    assert len(fake.violations) == 3
    assert "$.content" in fake.violations[0] and "/callback" in fake.violations[1]
    assert "not in Discord's API" in fake.violations[2]
    assert not fake.response_violations


async def test_user_message_reaches_on_message(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, bot = world
    memes = fake.channel("memes")
    await fake.post_user_message(memes, f"{fake.bot.mention} make it funny", author=fake.bob)
    [message] = await fake.wait_for(lambda: bot.seen_messages, what="on_message")
    assert message.content.endswith("make it funny") and message.author.id == fake.bob.id
    assert message.channel.id == memes.id and bot.user in message.mentions
    fake.assert_clean()


async def test_without_message_content_intent_content_is_blank() -> None:
    async with running(message_content=False) as (fake, bot):
        await fake.post_user_message(fake.channel("memes"), "secret words")
        await fake.post_user_message(fake.channel("memes"), f"{fake.bot.mention} hi")
        seen = await fake.wait_for(lambda: len(bot.seen_messages) == 2 and bot.seen_messages)
        assert [m.content for m in seen] == ["", f"{fake.bot.mention} hi"]


async def test_reaction_reaches_on_raw_reaction_add(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, bot = world
    message = await fake.post_user_message(fake.channel("memes"), "react to me")
    await fake.add_reaction(fake.channel("memes"), message, "👍", fake.bob)
    [reaction] = await fake.wait_for(lambda: bot.seen_reactions, what="on_raw_reaction_add")
    assert (
        str(reaction.emoji) == "👍" and reaction.user_id == fake.bob.id and reaction.message_id == message.id
    )
    assert reaction.member is not None and reaction.member.id == fake.bob.id
    fake.assert_clean()


async def test_heartbeats_arrive_on_time_while_idle_and_a_blocked_loop_shows(
    world: tuple[FakeDiscord, TinyBot],
) -> None:
    fake, _ = world
    await asyncio.sleep(fake.heartbeat_interval * 4)
    assert len(fake.connections[0].heartbeats) >= 4
    assert not fake.late_heartbeats()
    time.sleep(fake.heartbeat_interval * 3)  # noqa: ASYNC251 -- blocks the loop, as inference on it would
    # The sleep alone makes a gap of three intervals: over one interval of slack whatever the load.
    assert fake.late_heartbeats(slack=fake.heartbeat_interval)
    await asyncio.sleep(fake.heartbeat_interval)  # let the client catch up before teardown


@pytest.mark.parametrize("cut", ["close 4000", "tcp abort", "op 7"])
async def test_lost_connection_resumes_with_replay(world: tuple[FakeDiscord, TinyBot], cut: str) -> None:
    fake, bot = world
    session = fake.connections[0].session
    assert session is not None
    if cut == "close 4000":
        await fake.close_gateway(4000)
    elif cut == "tcp abort":
        fake.abort_gateway()
    else:
        await fake.request_reconnect()
    # Sent while the client is away: RESUME must replay it.
    await fake.post_user_message(fake.channel("memes"), "while you were out")
    resumed = await fake.wait_for_connection("resume")
    resume = next(f for f in resumed.received if f["op"] == 6)["d"]
    assert resumed.path.startswith("/resume") and resume["session_id"] == session.id
    [message] = await fake.wait_for(lambda: bot.seen_messages, what="the replayed message")
    assert message.content == "while you were out"
    ix = await fake.slash_command("ping")
    assert (await ix.acknowledgement()).type == 5
    await ix.followup()
    fake.assert_clean()


async def test_invalid_session_makes_the_client_identify_again(world: tuple[FakeDiscord, TinyBot]) -> None:
    fake, _ = world
    await fake.invalidate_session(resumable=False)
    second = await fake.wait_for_connection("identify", count=2)
    assert second.session is not fake.connections[0].session
    fake.assert_clean()


@pytest.mark.expect_errors
async def test_late_acknowledgement_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async with running(interaction_timeout=0.2) as (fake, _):
        ix = await fake.slash_command("slow")
        await fake.wait_for(lambda: ix.refusals, what="the late callback")
        assert not ix.acknowledged and "callback after" in ix.refusals[0]
        await fake.wait_for(lambda: any(r.levelno >= logging.ERROR for r in caplog.records))
    assert "Unknown interaction" in caplog.text


@pytest.mark.expect_errors
async def test_upload_over_the_interaction_limit_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async with running() as (fake, _):
        ix = await fake.slash_command("ping", attachment_size_limit=16)
        refused = await fake.wait_for_request("POST", WEBHOOK)
        assert refused.status == 413 and not ix.followups
        await fake.wait_for(lambda: any(r.levelno >= logging.ERROR for r in caplog.records))


async def test_privileged_intent_not_switched_on_is_refused() -> None:
    async with FakeDiscord(allowed_intents=0) as fake:
        with pytest.raises(AssertionError, match="stopped before it was ready") as failure:
            async with run_client(TinyBot(message_content=True), fake):
                pass
        assert isinstance(failure.value.__cause__, discord.PrivilegedIntentsRequired)
        assert "4014" in fake.problems()[0]


async def test_point_discord_py_at_restores_the_urls() -> None:
    before = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    async with FakeDiscord() as fake:
        with point_discord_py_at(fake):
            assert Route.BASE == fake.api_base
            assert str(DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == before


def test_spec_matching_and_the_integer_snowflake_allowance() -> None:
    spec = load_spec()
    matched = spec.match("PATCH", "/webhooks/1/token/messages/@original")
    assert matched is not None and matched[0].template.endswith("/messages/@original")
    create, params = spec.match("POST", "/channels/5/messages") or (None, {})
    assert create is not None and params == {"channel_id": "5"}
    # discord.py's integer ids pass; a wrong type does not.
    reply = {"attachments": [{"id": 0, "filename": "a.png"}], "message_reference": {"message_id": 7}}
    assert spec.check_body(create, reply) == []
    assert spec.check_body(create, {"content": 1}) == ["$.content: 1 is not of type 'string', 'null'"]
    # Answers are checked strictly: a message without an author is not one.
    assert spec.check_response(spec.operation("POST", WEBHOOK), 200, {"id": "1"})
