"""Signed links to a team's queue page (`/rescue queue`): HMAC-SHA256 over the team and
the expiry, checked in constant time. Pure: `now` is passed in."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

DEFAULT_TTL = 12 * 3600.0  # a link lasts a shift or so, then `/rescue queue` again
# A derived key is bound to this purpose: a link's signature says nothing about the
# platform secret it was derived from, and no other HMAC of the bot's verifies as a link.
PURPOSE = b"chat-rescue queue link v1"
_DIGITS = re.compile(r"[0-9]{1,15}")  # an expiry: ASCII digits only ("²".isdigit() is true)
# A query or header arrives as text that may hold lone surrogates (undecodable bytes): they
# are encoded as they are, never an error, so a mangled link is simply not valid.
UNDECODED = ("utf-8", "surrogatepass")


class Verdict(StrEnum):
    """What a link's parameters are worth."""

    VALID = "valid"
    EXPIRED = "expired"
    BAD = "bad"  # malformed, tampered with, or signed for another team


def derive_secret(*secrets: str) -> bytes | None:
    """The signing key from the first secret given that is set (QUEUE_SECRET, or one the
    bot has anyway): every replica with the same configuration signs alike, with nothing to
    store. None when none is set."""
    for secret in secrets:
        if secret:
            return hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()
    return None


@dataclass(frozen=True, slots=True)
class QueueLinks:
    """Makes and checks the links; `base_url` is where the bot is reached ("" unknown)."""

    secret: bytes
    base_url: str = ""
    ttl: float = DEFAULT_TTL

    def signature(self, team: str, expires: int) -> str:
        message = f"{len(team)}:{team}:{expires}".encode(*UNDECODED)  # length first
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def params(self, team: str, now: float) -> dict[str, str]:
        """The query that opens `team`'s queue until `now + ttl`."""
        expires = int(now + self.ttl)
        return {"team": team, "exp": str(expires), "sig": self.signature(team, expires)}

    def url(self, team: str, now: float) -> str | None:
        """The full link, or None when the base URL is not configured."""
        if not self.base_url:
            return None
        return f"{self.base_url.rstrip('/')}/queue?{urlencode(self.params(team, now))}"

    def check(self, team: str, expires: str, signature: str, now: float) -> Verdict:
        """Whether a link's team, expiry and signature hold at `now`. A tampered expiry or
        team fails the signature, so only an untouched link can be merely EXPIRED."""
        if not (team and _DIGITS.fullmatch(expires) and signature):
            return Verdict.BAD
        if not hmac.compare_digest(self.signature(team, int(expires)).encode(),
                                   signature.encode(*UNDECODED)):
            return Verdict.BAD
        return Verdict.VALID if now < int(expires) else Verdict.EXPIRED
