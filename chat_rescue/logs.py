"""Logging set-up that never lets a token or secret reach a log line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TextIO

from chat_rescue.bot.settings import Settings

# Token shapes, redacted even when they are not ours (a pasted token in an error message).
_TOKEN_SHAPES = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"
)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with every known secret and token shape replaced."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN_SHAPES.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def secrets_of(settings: Settings) -> list[str]:
    """The secret values in the configuration."""
    values = [settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token,
              settings.telegram_bot_token, settings.telegram_webhook_secret]
    return [v.get_secret_value() for v in values if v is not None]


def configure(settings: Settings, *, stream: TextIO | None = None) -> RedactSecrets:
    """Root logging at LOG_LEVEL with secrets redacted on every handler."""
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    redact = RedactSecrets(secrets_of(settings))
    handler.addFilter(redact)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # httpx logs every request URL at INFO, and Telegram URLs carry the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return redact
