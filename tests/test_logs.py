"""Secrets never reach a log line, whoever logs them."""

from __future__ import annotations

import io
import logging

from pydantic import SecretStr

from chat_rescue import logs
from chat_rescue.bot.settings import Settings

BOT_TOKEN = "xoxb-1111-2222-abcdefabcdef"
TG_TOKEN = "7654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"


def test_known_secrets_and_token_shapes_are_redacted() -> None:
    settings = Settings(_env_file=None, slack_bot_token=SecretStr(BOT_TOKEN),
                        slack_signing_secret=SecretStr(SIGNING),
                        telegram_bot_token=SecretStr(TG_TOKEN))
    out = io.StringIO()
    logs.configure(settings, stream=out)
    try:
        log = logging.getLogger("some.library")
        log.warning("POST https://api.telegram.org/bot%s/getUpdates", TG_TOKEN)
        log.error("signature mismatch with secret %s", SIGNING)
        log.info("token was %s; a stranger's xoxb-9-9-zzzzzz too", BOT_TOKEN)
        try:
            raise RuntimeError(f"auth failed for {BOT_TOKEN}")
        except RuntimeError:
            log.exception("call failed")
    finally:
        logging.getLogger().handlers.clear()
    text = out.getvalue()
    for secret in (BOT_TOKEN, TG_TOKEN, SIGNING, "xoxb-9-9-zzzzzz"):
        assert secret not in text
    assert text.count(logs.REDACTED) >= 5
    assert "getUpdates" in text and "call failed" in text


def test_settings_never_print_secrets() -> None:
    settings = Settings(_env_file=None, slack_bot_token=SecretStr(BOT_TOKEN))
    assert BOT_TOKEN not in repr(settings) and BOT_TOKEN not in str(settings)
