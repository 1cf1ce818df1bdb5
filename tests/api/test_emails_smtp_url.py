"""SLOTGRAPH_SMTP_URL as the docs write it (docs/emails.md): plain, STARTTLS, TLS, a login."""

from __future__ import annotations

import pytest

from slotgraph.notifications.transport import SmtpSettings, parse_smtp_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpSettings("mail.example", 25, False, False, None, None)),
        (
            "smtp://me%40example.com:p%3Ass@mail.example:587?starttls=true",
            SmtpSettings("mail.example", 587, False, True, "me@example.com", "p:ss"),
        ),
        ("smtps://u:p@mail.example", SmtpSettings("mail.example", 465, True, False, "u", "p")),
        ("smtps://mail.example:2465", SmtpSettings("mail.example", 2465, True, False, None, None)),
        (
            "smtps://mail.example?ca_file=/etc/ca.pem",
            SmtpSettings("mail.example", 465, True, False, None, None, "/etc/ca.pem"),
        ),
    ],
)
def test_smtp_urls(url: str, expected: SmtpSettings) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "mail.example:25"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="SLOTGRAPH_SMTP_URL"):
        parse_smtp_url(url)
