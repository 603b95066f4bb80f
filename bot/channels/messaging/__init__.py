"""Telegram, Slack, Twilio (SMS, WhatsApp) and Messenger: Rasa's connectors with signatures checked.

Each channel is Rasa 3.6's own connector with what it lacks added: the
platform's request signature is verified before anything is processed (a bad
or missing one gets a 403), API base URLs can be configured, and on channels
without buttons (SMS, WhatsApp) the choices are numbered and a reply with a
number picks that choice.
"""
