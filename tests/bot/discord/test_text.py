"""What the bot's messages say, and what a server's settings hold."""

from __future__ import annotations

import dataclasses

from bot.discord._policy import GuildSettings
from bot.discord._text import code, escape, progress_text, result_text, workers_line
from generators.models import ModelInfo
from generators.requests import Failed, GenerationRequest, Kind, Source
from generators.streams.heartbeat import WorkerStatus


def test_workers_line_names_each_worker_with_its_load_and_speed() -> None:
    workers = [
        WorkerStatus("gpu0", ("sd-turbo",), "cuda:0", busy=2, images_per_s=3.456),
        WorkerStatus("gpu1", ("sd-turbo",), "cuda:0"),
    ]
    assert workers_line(workers) == "Workers: 2: gpu0 (2 running, 3.46 images/s), gpu1 (0 running)"


def test_no_worker_online_says_jobs_wait() -> None:
    assert "none online" in workers_line([])


def test_a_long_list_is_cut_with_a_count() -> None:
    line = workers_line([WorkerStatus(f"w{i}", ("tiny",), "cpu") for i in range(13)])
    assert line.startswith("Workers: 13: w0 (0 running)") and line.endswith("w9 (0 running) and 3 more")


def test_a_result_names_its_model_and_the_command_to_make_it_again() -> None:
    request = GenerationRequest(prompt="a cat", model="tiny-b")
    text = result_text(request, seed=7, job_id="abc", user_id=1, command="a cat --seed 7 --model tiny-b")
    assert "model `tiny-b` · seed `7` · job `abc`" in text and text.endswith("--model tiny-b`")


def test_a_remix_says_what_it_started_from_beside_its_command_as_plain_text() -> None:
    remix = GenerationRequest(prompt="a cat", source=Source("0" * 64, job="a_b*c@everyone"), strength=0.6)
    text = result_text(remix, seed=7, job_id="abc", user_id=1, command="a cat --strength 0.6")
    command, origin = text.splitlines()[-2:]
    assert command.endswith("--strength 0.6`")
    assert origin == "🎨 remix of job a\\_b\\*c@\u200beveryone at strength 0.6"
    plain = result_text(GenerationRequest(prompt="a cat"), seed=7, job_id="abc", user_id=1, command="a cat")
    assert "🎨" not in plain and "remix" not in plain


def test_guild_settings_keep_a_default_model_per_kind_per_server_and_channel() -> None:
    image = ModelInfo("tiny-b", "tiny", Kind.IMAGE, 3, 50, 0.0, 64, 1, 8, "cpu", "float32")
    other = dataclasses.replace(image, name="tiny")
    clip = dataclasses.replace(image, name="tiny-video", kind=Kind.VIDEO)
    settings = GuildSettings().with_model(image, None).with_model(clip, None).with_model(other, 42)
    assert settings.model_for(42, Kind.IMAGE) == "tiny" and settings.model_for(7, Kind.IMAGE) == "tiny-b"
    assert settings.model_for(42, Kind.VIDEO) == "tiny-video"  # the server's, for the kind 42 left unset
    assert GuildSettings.from_dict(settings.to_dict()) == settings
    cleared = settings.with_model(None, 42).with_model(None, None)
    assert cleared.models == {} and cleared.channel_models == {}
    assert GuildSettings.from_dict({"default_n": 4}).models == {}  # settings written before models existed


def test_echoed_text_is_shown_as_text() -> None:
    text = escape(
        "@everyone @here <@&123> <@!45> <#67> **bold** ||spoiler|| [Free Nitro](https://x.y)\n# big"
    )
    assert "@everyone" not in text and "@here" not in text and "<@" not in text and "<#" not in text
    assert "](" not in text and "**" not in text and "||" not in text and "\n" not in text
    assert text.replace("\\", "").replace("\u200b", "").startswith("@everyone @here <@&123>")


def test_code_cannot_be_closed_early_and_is_clipped() -> None:
    assert code("a `b` @everyone", 100) == "`a ˋbˋ @\u200beveryone`"
    assert len(code("x" * 6000, 80)) == 82 and code("", 10) == "` `"


def test_a_result_caption_fits_whatever_was_typed() -> None:
    request = GenerationRequest(prompt="*" * 600, model="m" * 100)
    text = result_text(request, seed=1, job_id="j" * 6000, user_id=1, command="`" * 6000)
    assert len(text) <= 2000 and "by <@1>" in text


def test_a_failure_reason_is_escaped_and_clipped() -> None:
    text = progress_text(Failed("@everyone " + "x" * 6000), GenerationRequest(prompt="<@&1>"))
    assert len(text) < 1000 and "@everyone" not in text and "<@&" not in text


def test_a_phase_shows_its_words_and_a_live_elapsed_time() -> None:
    from bot.discord._text import progress_text
    from generators.requests import GenerationRequest, Phase

    text = progress_text(Phase("loading", "model sd_turbo (4.96 GB)"), GenerationRequest("a cat"), now=1000.0)
    # Escaped as every echoed name is, and timed live by Discord's relative timestamp.
    assert text.endswith("⚙️ Loading model sd\\_turbo \\(4.96 GB\\)… (started <t:1000:R>)")
