"""All configuration, from the environment or a `.env` file (see `.env.example`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chat_rescue.bot.durations import DurationError, parse_duration
from chat_rescue.bot.hours import Schedule
from chat_rescue.bot.hours_text import HoursError, from_environment, parse_country, parse_zone
from chat_rescue.bot.policy import OFF_HOURS_MESSAGE, Policy
from chat_rescue.bot.queue_links import DEFAULT_TTL, QueueLinks, derive_secret


class Settings(BaseSettings):
    """One class for every variable; secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "sqlite:///chat-rescue.db"
    # seconds `run` waits for a PostgreSQL server that does not answer yet (starting with it)
    database_wait: float = Field(default=30.0, ge=0, le=3600)
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)
    log_level: str = "INFO"
    rescue_replica: str = ""  # this process's name among replicas (default host:pid)
    metrics_token: SecretStr | None = None  # GET /metrics wants it as a bearer token; unset: open

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_team_channel: str = ""
    slack_intake_channels: str = ""
    slack_admins: str = ""

    telegram_bot_token: SecretStr | None = None
    telegram_support_chat_id: str = ""
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str = ""
    telegram_webhook_secret: SecretStr | None = None

    rescue_accept: str = "2m"
    rescue_first_response: str = "30s"
    rescue_idle: str = "5m"
    rescue_escalate: str = "5m"
    rescue_close_reminder: str = "30m"
    rescue_auto_close: str = "off"
    rescue_escalate_to: str = "@here"
    rescue_escalate_repeats: int = Field(default=2, ge=0, le=100)
    rescue_closing_message: str = ""
    rescue_preview_chars: int = Field(default=80, ge=0, le=2000)
    rescue_hours: str = ""
    rescue_timezone: str = ""
    rescue_holidays: str = ""
    rescue_off_hours_message: str = OFF_HOURS_MESSAGE
    rescue_sweep: str = "15m"
    rescue_sweep_default: Literal["handover", "keep"] = "handover"
    rescue_sweep_dm: bool = False
    rescue_report_weekly: str = ""  # e.g. "mon 09:00": the 7-day report to the team channel

    @field_validator("rescue_report_weekly")
    @classmethod
    def _weekly(cls, value: str) -> str:
        from chat_rescue.reports.weekly import parse_weekly

        parse_weekly(value)  # a ValueError says the right form
        return value.strip()

    # The queue page (GET /queue): where the bot is reached, for `/rescue queue`'s links;
    # a token that opens every team's queue; the links' key (empty: derived from the
    # platform's secrets) and how long a link lasts.
    public_url: str = ""
    queue_token: SecretStr | None = None
    queue_secret: SecretStr | None = None
    queue_link_ttl: str = "12h"

    @field_validator(
        "slack_bot_token", "slack_signing_secret", "slack_app_token", "telegram_bot_token",
        "telegram_webhook_secret", "queue_token", "queue_secret", "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `SLACK_BOT_TOKEN=` (as copied from .env.example) means "not configured".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    @field_validator(
        "rescue_accept", "rescue_first_response", "rescue_idle", "rescue_escalate",
        "rescue_close_reminder", "rescue_auto_close", "rescue_sweep", "queue_link_ttl",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        try:
            parse_duration(value)
        except DurationError as bad:
            raise ValueError(str(bad)) from None
        return value

    @field_validator("rescue_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        try:
            from_environment(value, "", "")
        except HoursError as bad:
            raise ValueError(str(bad)) from None
        return value

    @field_validator("rescue_timezone")
    @classmethod
    def _timezone(cls, value: str, info: ValidationInfo) -> str:
        try:
            zone = parse_zone(value) if value.strip() else ""
            if "rescue_hours" in info.data:  # valid itself: the two must name one zone
                from_environment(info.data["rescue_hours"], zone, "")
        except HoursError as bad:
            raise ValueError(str(bad)) from None
        return zone

    @field_validator("rescue_holidays")
    @classmethod
    def _holidays(cls, value: str) -> str:
        try:
            return (parse_country(value) or "off") if value.strip() else ""
        except HoursError as bad:
            raise ValueError(str(bad)) from None

    @property
    def intake_channels(self) -> tuple[str, ...]:
        return _split(self.slack_intake_channels)

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(_split(self.slack_admins))

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None

    def schedule(self) -> Schedule:
        """The working hours `RESCUE_HOURS`, `RESCUE_TIMEZONE` and `RESCUE_HOLIDAYS` say."""
        return from_environment(self.rescue_hours, self.rescue_timezone, self.rescue_holidays)

    def base_policy(self) -> Policy:
        """The environment's policy, before team and channel overrides."""
        return Policy(
            accept=parse_duration(self.rescue_accept),
            first_response=parse_duration(self.rescue_first_response),
            idle=parse_duration(self.rescue_idle),
            escalate=parse_duration(self.rescue_escalate),
            close_reminder=parse_duration(self.rescue_close_reminder),
            auto_close=parse_duration(self.rescue_auto_close),
            escalate_to=self.rescue_escalate_to,
            escalate_repeats=self.rescue_escalate_repeats,
            closing_message=self.rescue_closing_message,
            schedule=self.schedule(),
            off_hours_message=self.rescue_off_hours_message,
            sweep=parse_duration(self.rescue_sweep),
            sweep_default=self.rescue_sweep_default,
        )


def queue_links(settings: Settings) -> QueueLinks | None:
    """The signer of `/rescue queue`'s links: QUEUE_SECRET, else a key derived from the
    platform secrets every replica shares (None: no secret at all, so no links)."""
    secret = derive_secret(*(_secret(value) for value in (
        settings.queue_secret, settings.slack_signing_secret, settings.slack_bot_token,
        settings.telegram_bot_token)))
    if secret is None:
        return None
    ttl = parse_duration(settings.queue_link_ttl) or DEFAULT_TTL  # `off`: the default
    return QueueLinks(secret, settings.public_url.strip(), ttl)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
