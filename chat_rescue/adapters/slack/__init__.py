"""Slack: a workspace app with intake channels, an inbox channel and `/rescue`."""

from chat_rescue.adapters.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter"]
