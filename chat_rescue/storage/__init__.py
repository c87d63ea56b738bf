"""Persistence: the backends that implement the core's ports (`chat_rescue.bot.ports`)."""
