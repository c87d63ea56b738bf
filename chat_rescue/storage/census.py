"""How both stores count open conversations by platform and state without reading every
row: by team and state off the (team, state) index, each team's platform read off the
ends of its keys on the (team, key) index of open conversations."""

from __future__ import annotations

from collections.abc import Callable, Iterable


def open_counts(by_team: Iterable[tuple[str, str, int]],
                ends: Callable[[str], tuple[str, str]],
                by_key: Callable[[str], Iterable[tuple[str, str, int]]],
                ) -> dict[tuple[str, str], int]:
    """(platform, state) counts from `by_team` ((team, state, count) of open ones). A team
    whose first and last open keys (`ends(team)`) start with one platform has only that
    platform's keys between them (the keys are sorted); a team that spans platforms (none
    that the adapters make) is counted key by key (`by_key(team)`: (platform, state,
    count))."""
    counts: dict[tuple[str, str], int] = {}
    teams: dict[str, list[tuple[str, int]]] = {}
    for team, state, n in by_team:
        teams.setdefault(team, []).append((state, n))
    for team, states in teams.items():
        first, last = ends(team)
        platform = first.split(":", 1)[0]
        if last.split(":", 1)[0] == platform:
            found: Iterable[tuple[str, str, int]] = ((platform, s, n) for s, n in states)
        else:
            found = by_key(team)
        for where, state, n in found:
            counts[(where, state)] = counts.get((where, state), 0) + n
    return counts
