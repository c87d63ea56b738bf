"""Configuration from the environment and `.env`: precedence, validation, secrets kept secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from chat_rescue.bot.hours_text import from_environment
from chat_rescue.bot.policy import Policy
from chat_rescue.bot.settings import Settings
from chat_rescue.ops import configuration_problems

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-do-not-print",
    "SLACK_SIGNING_SECRET": "signing-secret-do-not-print",
    "SLACK_APP_TOKEN": "xapp-1-do-not-print",
    "TELEGRAM_BOT_TOKEN": "123456:telegram-do-not-print",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret-do-not-print",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No variable of the real environment and no real `.env` leaks into a test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_defaults_are_the_built_in_policy() -> None:
    settings = Settings()
    assert settings.base_policy() == Policy()
    assert settings.database_url == "sqlite:///chat-rescue.db"
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)
    assert not settings.slack_enabled and not settings.telegram_enabled


def test_rescue_variables_make_the_environments_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESCUE_ACCEPT", "90s")
    monkeypatch.setenv("RESCUE_FIRST_RESPONSE", "off")
    monkeypatch.setenv("RESCUE_IDLE", "2m")
    monkeypatch.setenv("RESCUE_ESCALATE", "1h30m")
    monkeypatch.setenv("RESCUE_CLOSE_REMINDER", "45m")
    monkeypatch.setenv("RESCUE_AUTO_CLOSE", "2h")
    monkeypatch.setenv("RESCUE_ESCALATE_TO", "@oncall @bob")
    monkeypatch.setenv("RESCUE_ESCALATE_REPEATS", "5")
    monkeypatch.setenv("RESCUE_CLOSING_MESSAGE", "Bye for now!")
    monkeypatch.setenv("RESCUE_SWEEP", "5m")
    monkeypatch.setenv("RESCUE_SWEEP_DEFAULT", "keep")
    monkeypatch.setenv("RESCUE_SWEEP_DM", "true")
    settings = Settings()
    assert settings.base_policy() == Policy(
        accept=90.0, first_response=None, idle=120.0, escalate=5400.0, close_reminder=2700.0,
        auto_close=7200.0, escalate_to="@oncall @bob", escalate_repeats=5,
        closing_message="Bye for now!", sweep=300.0, sweep_default="keep",
    )
    assert settings.rescue_sweep_dm is True


def test_a_dot_env_file_in_the_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "# comment\nRESCUE_IDLE=90s\nSLACK_BOT_TOKEN=xoxb-from-file\nPORT=8080\n"
        "SLACK_INTAKE_CHANNELS= C1, C2 ,,C3\nSLACK_ADMINS=U1,U2\n"
    )
    settings = Settings()
    assert settings.base_policy().idle == 90.0
    assert settings.port == 8080
    assert settings.slack_enabled
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-file"
    assert settings.intake_channels == ("C1", "C2", "C3")
    assert settings.admins == frozenset({"U1", "U2"})


def test_the_environment_wins_over_the_dot_env_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("RESCUE_IDLE=90s\nRESCUE_ACCEPT=1m\n")
    monkeypatch.setenv("RESCUE_IDLE", "3m")
    policy = Settings().base_policy()
    assert (policy.idle, policy.accept) == (180.0, 60.0)


@pytest.mark.parametrize("variable", ["RESCUE_ACCEPT", "RESCUE_FIRST_RESPONSE", "RESCUE_IDLE",
                                      "RESCUE_ESCALATE", "RESCUE_CLOSE_REMINDER",
                                      "RESCUE_AUTO_CLOSE", "RESCUE_SWEEP"])
@pytest.mark.parametrize("value", ["5x", "0s", "", "five minutes"])
def test_an_invalid_duration_is_refused_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    errors = refused.value.errors()
    assert [str(e["loc"][0]).upper() for e in errors] == [variable]
    assert variable in str(refused.value).upper()
    assert "30s, 5m" in errors[0]["msg"] or "longer than zero" in errors[0]["msg"]


def test_rescue_idle_5x_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESCUE_IDLE", "5x")
    with pytest.raises(ValidationError) as refused:
        Settings()
    (error,) = refused.value.errors()
    assert error["loc"] == ("rescue_idle",)
    assert "'5x' is not a duration like 30s, 5m, 1h30m, 2h, or off" in error["msg"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("PORT", "70000"), ("PORT", "http"), ("RESCUE_ESCALATE_REPEATS", "-1"),
     ("RESCUE_PREVIEW_CHARS", "lots"), ("RESCUE_SWEEP_DEFAULT", "close"),
     ("RESCUE_SWEEP_DM", "perhaps")],
)
def test_other_invalid_values_are_named(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert [str(e["loc"][0]).upper() for e in refused.value.errors()] == [variable]


def test_secrets_never_appear_in_repr_str_or_a_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    policy = settings.base_policy()
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(policy)]
    for value in SECRETS.values():
        assert not any(value in text for text in shown)
    assert settings.slack_enabled and settings.telegram_enabled
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == SECRETS["TELEGRAM_BOT_TOKEN"]


def test_a_validation_error_does_not_print_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RESCUE_IDLE", "5x")
    with pytest.raises(ValidationError) as refused:
        Settings()
    for value in SECRETS.values():
        assert value not in str(refused.value)


def test_env_example_lists_exactly_the_settings() -> None:
    written = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert written == {name.upper() for name in Settings.model_fields}


def test_env_example_copied_to_dot_env_is_valid(clean_env: Path) -> None:
    (clean_env / ".env").write_text(ENV_EXAMPLE.read_text())
    assert Settings().base_policy() == Policy()


def test_empty_tokens_from_env_example_enable_no_platform(clean_env: Path) -> None:
    (clean_env / ".env").write_text(ENV_EXAMPLE.read_text())
    settings = Settings()
    assert not settings.slack_enabled
    assert not settings.telegram_enabled


def test_working_hours_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESCUE_HOURS", "mon-fri 09:00-13:00,14:00-18:00")
    monkeypatch.setenv("RESCUE_TIMEZONE", "europe/berlin")
    monkeypatch.setenv("RESCUE_HOLIDAYS", "de-by")
    monkeypatch.setenv("RESCUE_OFF_HOURS_MESSAGE", "Back {back}.")
    policy = Settings().base_policy()
    assert policy.schedule == from_environment("mon-fri 09:00-13:00,14:00-18:00",
                                               "Europe/Berlin", "DE-BY")
    assert policy.schedule.country == "DE-BY" and policy.schedule.zone == "Europe/Berlin"
    assert policy.off_hours_message == "Back {back}."


def test_the_zone_may_end_rescue_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESCUE_HOURS", "daily 08:00-20:00 America/New_York")
    assert Settings().base_policy().schedule.zone == "America/New_York"


@pytest.mark.parametrize(
    ("variables", "named", "says"),
    [
        ({"RESCUE_HOURS": "mon-fry 09:00-18:00"}, "RESCUE_HOURS", "is not a day"),
        ({"RESCUE_HOURS": "mon-fri 9-5"}, "RESCUE_HOURS", "did you mean 05:00-09:00?"),
        ({"RESCUE_HOURS": "mon-fri closed"}, "RESCUE_HOURS", "no working hours"),
        ({"RESCUE_TIMEZONE": "Mars/Olympus"}, "RESCUE_TIMEZONE", "is not a time zone"),
        ({"RESCUE_HOLIDAYS": "XX"}, "RESCUE_HOLIDAYS", "is not a country"),
        ({"RESCUE_HOURS": "mon-fri 09:00-18:00 Europe/Berlin", "RESCUE_TIMEZONE": "UTC"},
         "RESCUE_TIMEZONE", "give the zone once"),
    ],
)
def test_bad_working_hours_refuse_the_start_with_the_fix(
    variables: dict[str, str], named: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    (problem,) = configuration_problems(refused.value)
    assert problem.startswith(f"{named} is invalid: ") and says in problem
    assert "\n" not in problem
