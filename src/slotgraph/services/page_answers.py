"""A booking page's form: the visitor's answers and the page's rules for them (which fields it
asks, which are required). Errors are (field, code) pairs; web/ words them in the page's language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from slotgraph.schemas import Customer, has_control
from slotgraph.services.pages import PublicPage

MAX_ANSWER = 2_000  # characters of the notes
# characters of one custom field: five of them fit the booking's meta (16 KiB) in any script
MAX_CUSTOM = 500
_EMAIL_MAX = 320


@dataclass(frozen=True)
class Answers:
    """The form's answers, as the visitor typed them (kept to show the form again)."""

    name: str = ""
    email: str = ""
    phone: str = ""
    notes: str = ""
    custom: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Answers:
        return cls(
            name=form.get("name", "").strip(),
            email=form.get("email", "").strip(),
            phone=form.get("phone", "").strip(),
            notes=form.get("notes", "").strip(),
            custom={k[2:]: v.strip() for k, v in form.items() if k.startswith("f_")},
        )


# Error codes of the form, per field; web/ words them in the page's language.
REQUIRED, EMAIL, TOO_LONG, CONTROL = "required", "email", "too_long", "control"


def check_answers(view: PublicPage, answers: Answers) -> list[tuple[str, str]]:
    """The page's form rules: name and email always; phone, notes and custom fields as the
    page asks. Returns (field, code) pairs; none when the answers are fine."""
    fields = view.page.fields
    errors: list[tuple[str, str]] = []

    def need(name: str, value: str, required: bool, most: int) -> None:
        if required and not value:
            errors.append((name, REQUIRED))
        elif len(value) > most:
            errors.append((name, TOO_LONG))

    need("name", answers.name, True, 200)
    if has_control(answers.name) and not any(n == "name" for n, _ in errors):
        errors.append(("name", CONTROL))  # the name goes into emails: no CR, LF or the like
    need("email", answers.email, True, _EMAIL_MAX)
    if answers.email and not any(n == "email" for n, _ in errors):
        try:
            Customer(name="x", email=answers.email)
        except ValueError:
            errors.append(("email", EMAIL))
    need("phone", answers.phone, fields.phone == "required", 50)
    need("notes", answers.notes, fields.notes == "required", MAX_ANSWER)
    for f in fields.custom:
        need(f"f_{f.key}", answers.custom.get(f.key, ""), f.required, MAX_CUSTOM)
    return errors
