"""An email's Subject, folded so that a reader gets back exactly what was written.

Python 3.11's folder (email.policy's, which aiosmtplib's SMTP policy and `bytes(message)` use)
gets two cases of a subject over 78 characters wrong: it may fold right after `Subject:`, so
Python's own reader gives the subject a leading space ("Gebucht: Dr. Dr., Samstag, 18. Mai
2024, 12:00 bis 13:00 (Europe/Oslo)"), and it may drop the space between two encoded words
("Müller-Lüdenscheidt für" read back as "Müller-Lüdenscheidtfür"). Here ASCII is folded only
before the spaces that are there, never before the first word; anything else is written as UTF-8
encoded words (email.header.Header), whose text keeps its spaces; within the policy's line
length but for a word longer than a line.
"""

from __future__ import annotations

from email.header import Header
from email.policy import Policy


class Subject(str):
    """A Subject header's value (`message["Subject"] = Subject(text)`): the policy keeps it as
    it is (it has a `name`) and folds it with `fold`."""

    name = "Subject"

    def fold(self, *, policy: Policy) -> str:
        text = str(self)
        if "\r" in text or "\n" in text:  # as the policy's own check: no header injected
            raise ValueError("A subject is one line.")
        limit = policy.max_line_length or 998
        if not text.isascii() or "=?" in text:  # (ASCII that would read as an encoded word too)
            header = Header(text, "utf-8", header_name=self.name)
            folded = header.encode(maxlinelen=limit, linesep=policy.linesep)
            return f"{self.name}: {folded}{policy.linesep}"
        # ASCII as it is, a line break before a space where a line would pass the limit (never
        # before the first word: no empty first line, so no space read back in front).
        lines = [f"{self.name}:"]
        for word in text.split(" "):
            if (
                word
                and len(lines[-1]) > len(self.name) + 1
                and len(lines[-1]) + 1 + len(word) > limit
            ):
                lines.append("")
            lines[-1] += f" {word}"
        return policy.linesep.join(lines) + policy.linesep
