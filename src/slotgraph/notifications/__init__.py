"""Emails: the worker's email channel in the delivery pipeline (services/deliveries.py).

kinds      which event sends which email, to whom, with which iCalendar METHOD (a table)
channel    the channel's part of the pipeline: the dispatch filter and composing a message
render     the Jinja2 templates (built in, a server-wide directory, an app's overrides)
ics        a booking as an iCalendar object (`booking_ics`), also for the confirmation page
transport  SMTP (aiosmtplib) or, without SLOTGRAPH_SMTP_URL, .eml files in a directory
reminders  the worker timer that emits `booking.reminder`
"""
