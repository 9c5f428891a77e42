"""`check-config --connect` logs in to Reddit: the real asyncpraw against the fake Reddit."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.preflight import Level, connect_findings
from bot.settings import RedditConfig, Secrets, Settings, WebConfig
from tests.fakes.reddit import FakeReddit

pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth:DeprecationWarning")


def settings_for(fake: FakeReddit, **secrets: str) -> Settings:
    reddit = RedditConfig(enabled=True, oauth_url=fake.url, reddit_url=fake.url, short_url=fake.url)
    given = {
        "reddit_client_id": fake.client_id,
        "reddit_client_secret": fake.client_secret,
        "reddit_username": fake.username,
        "reddit_password": fake.password,
    } | secrets
    values = {name: SecretStr(value) for name, value in given.items()}
    return Settings(reddit=reddit, web=WebConfig(enabled=True), secrets=Secrets(**values))


async def test_good_credentials_log_in() -> None:
    async with FakeReddit() as fake:
        (found,) = await connect_findings(settings_for(fake))
    assert found.level is Level.OK and found.text == "logged in as u/memebot"


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ({"reddit_password": "wrong"}, "Reddit refused MEMEBOT_REDDIT_USERNAME/PASSWORD"),
        (
            {"reddit_client_secret": "wrong"},
            "Reddit refused the app's MEMEBOT_REDDIT_CLIENT_ID/CLIENT_SECRET",
        ),
    ],
)
async def test_wrong_credentials_are_a_problem_naming_which(secret: dict[str, str], says: str) -> None:
    async with FakeReddit() as fake:
        (found,) = await connect_findings(settings_for(fake, **secret))
    assert found.level is Level.PROBLEM and says in found.text
    assert "wrong" not in found.text
