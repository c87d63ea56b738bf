"""chat-rescue: keeps live support conversations from being left unanswered."""
