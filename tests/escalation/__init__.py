"""Tests of bot.escalation: store, notifiers and delivery worker."""
