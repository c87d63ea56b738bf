"""Local stand-ins for the Slack Web API and the Telegram Bot API."""
