"""Which key signs the queue links, and for how long they last, from the settings."""

from __future__ import annotations

from typing import Any

import pytest

from chat_rescue.bot.queue_links import Verdict
from chat_rescue.bot.settings import Settings, queue_links

NOW = 1_800_000_000.0


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_without_any_secret_there_are_no_links() -> None:
    assert queue_links(settings(queue_secret="", public_url="https://x")) is None


def test_replicas_with_the_same_configuration_sign_alike() -> None:
    one = queue_links(settings(slack_signing_secret="s3cret", telegram_bot_token="1:abc"))
    two = queue_links(settings(slack_signing_secret="s3cret", telegram_bot_token="1:abc"))
    assert one is not None and two is not None
    params = one.params("slack:C0TEAM", NOW)
    assert two.check(params["team"], params["exp"], params["sig"], NOW) is Verdict.VALID


def test_queue_secret_wins_and_changing_it_ends_every_link() -> None:
    platform = queue_links(settings(slack_signing_secret="s3cret"))
    own = queue_links(settings(slack_signing_secret="s3cret", queue_secret="q"))
    other = queue_links(settings(slack_signing_secret="s3cret", queue_secret="r"))
    assert platform is not None and own is not None and other is not None
    params = own.params("slack:C0TEAM", NOW)
    assert platform.check(params["team"], params["exp"], params["sig"], NOW) is Verdict.BAD
    assert other.check(params["team"], params["exp"], params["sig"], NOW) is Verdict.BAD


def test_the_link_life_and_base_come_from_the_settings() -> None:
    links = queue_links(settings(queue_secret="q", queue_link_ttl="30m",
                                 public_url=" https://rescue.example.com/ "))
    assert links is not None and links.ttl == 1800
    assert (links.url("t", NOW) or "").startswith("https://rescue.example.com/queue?")
    with pytest.raises(ValueError, match="not"):
        settings(queue_link_ttl="soon")
