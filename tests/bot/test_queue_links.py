"""Signed queue links: valid until they expire, and worthless once anything is changed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from chat_rescue.bot.queue_links import DEFAULT_TTL, QueueLinks, Verdict, derive_secret

NOW = 1_800_000_000.0
LINKS = QueueLinks(b"k" * 32, "https://rescue.example.com/", DEFAULT_TTL)


def checked(links: QueueLinks, params: dict[str, str], now: float = NOW) -> Verdict:
    return links.check(params["team"], params["exp"], params["sig"], now)


def test_a_link_opens_its_team_until_it_expires_twelve_hours_on() -> None:
    params = LINKS.params("slack:C0TEAM", NOW)
    assert int(params["exp"]) == NOW + 12 * 3600
    assert checked(LINKS, params) is Verdict.VALID
    assert checked(LINKS, params, NOW + 12 * 3600 - 1) is Verdict.VALID
    assert checked(LINKS, params, NOW + 12 * 3600) is Verdict.EXPIRED


def test_the_url_carries_the_team_expiry_and_signature() -> None:
    url = LINKS.url("telegram:-100123", NOW)
    assert url is not None
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "rescue.example.com", "/queue")
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query["team"] == "telegram:-100123"
    assert checked(LINKS, query) is Verdict.VALID


def test_without_a_base_url_there_is_no_link() -> None:
    assert QueueLinks(b"k" * 32).url("slack:C0TEAM", NOW) is None


def test_a_tampered_link_is_bad() -> None:
    params = LINKS.params("slack:C0TEAM", NOW)
    later = str(int(params["exp"]) + 3600)
    flipped = params["sig"][:-1] + ("0" if params["sig"][-1] != "0" else "1")
    assert checked(LINKS, {**params, "exp": later}) is Verdict.BAD  # a longer life
    assert checked(LINKS, {**params, "sig": flipped}) is Verdict.BAD
    assert checked(LINKS, {**params, "sig": params["sig"].upper()}) is Verdict.BAD
    assert checked(LINKS, {**params, "sig": ""}) is Verdict.BAD
    assert checked(LINKS, {**params, "exp": "soon"}) is Verdict.BAD
    assert checked(LINKS, {**params, "exp": "9" * 40}) is Verdict.BAD
    assert checked(LINKS, {**params, "sig": "é" * 64}) is Verdict.BAD


def test_a_tampered_stale_link_is_bad_not_merely_expired() -> None:
    params = LINKS.params("slack:C0TEAM", NOW - DEFAULT_TTL - 60)
    assert checked(LINKS, params) is Verdict.EXPIRED
    assert checked(LINKS, {**params, "exp": str(int(NOW) + 60)}) is Verdict.BAD


def test_a_link_shows_only_the_team_it_was_signed_for() -> None:
    params = LINKS.params("slack:C0TEAM", NOW)
    assert checked(LINKS, {**params, "team": "slack:C0OTHER"}) is Verdict.BAD
    # The team and expiry cannot be shifted into one another either.
    one = LINKS.params("slack:C0TEAM1", NOW)
    assert LINKS.check("slack:C0TEAM", "1" + one["exp"], one["sig"], NOW) is Verdict.BAD


def test_another_key_does_not_verify() -> None:
    params = LINKS.params("slack:C0TEAM", NOW)
    assert checked(QueueLinks(b"x" * 32), params) is Verdict.BAD


def test_the_key_comes_from_the_first_secret_set_and_is_not_that_secret() -> None:
    assert derive_secret("", "signing", "token") == derive_secret("signing")
    assert derive_secret("signing") != derive_secret("token")
    assert derive_secret("signing") != b"signing"
    assert derive_secret("", "") is None


def test_an_expiry_of_other_digits_or_a_mangled_team_is_bad_not_an_error() -> None:
    params = LINKS.params("slack:C0TEAM", NOW)
    for expiry in ("²", "١٢٣", params["exp"] + "²", " " + params["exp"]):
        assert checked(LINKS, {**params, "exp": expiry}) is Verdict.BAD, expiry
    # Undecodable bytes reach the bot as lone surrogates.
    assert checked(LINKS, {**params, "team": "slack:C0TEAM\udcff"}) is Verdict.BAD
    assert checked(LINKS, {**params, "sig": params["sig"][:-1] + "\udcff"}) is Verdict.BAD
