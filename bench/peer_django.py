"""The peer's side of `bench peer`: django-appointment in its own virtual environment.

Run by bench/peer.py as `bench/.peer-venv/bin/python bench/peer_django.py DIR`, never imported by
slotgraph (it imports Django and django-appointment only). Django is configured here on a SQLite
file in DIR, in the peer's own time zone conventions (naive local wall-clock times in TIME_ZONE).

It answers one JSON command per line on stdin with one JSON line on stdout, so the parent can
interleave the peer's runs with ours (ratios from the same moment of a loaded machine):
  {"op": "load", "staff": {"NAME": [[date, "HH:MM", "HH:MM"], ...]}, "hours": ["HH:MM", "HH:MM"],
   "step": 15, "duration": 30}                       -> {"staff": {"NAME": id}}
  {"op": "slots", "staff": [NAME...], "dates": [...], "via": "function"|"view"}
                                                     -> {"ms": ..., "slots": N, "pairs": N}
  {"op": "book", "staff": NAME, "date": ..., "start": "HH:MM", "end": "HH:MM"}
                                                     -> {"ms": ..., "created": bool, ...}
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import django
from django.conf import settings

WORK = Path(sys.argv[1])

urls = types.ModuleType("peer_urls")
sys.modules["peer_urls"] = urls

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-peer-not-secret",
    ALLOWED_HOSTS=["testserver"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(WORK / "peer.db")}},
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "phonenumber_field",
        "appointment",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ],
    ROOT_URLCONF="peer_urls",
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ]
            },
        }
    ],
    TIME_ZONE="Europe/Oslo",
    USE_TZ=True,
    EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    LOGGING_CONFIG=None,
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    PHONENUMBER_DEFAULT_REGION="NO",
)
django.setup()

import logging  # noqa: E402

logging.disable(logging.CRITICAL)  # the package logs every booking at INFO

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import include, path  # noqa: E402

urls.urlpatterns = [path("appointment/", include("appointment.urls"))]  # type: ignore[attr-defined]

from appointment.models import (  # noqa: E402
    Appointment,
    AppointmentRequest,
    Config,
    Service,
    StaffMember,
    WorkingHours,
)
from appointment.services import get_available_slots_for_staff  # noqa: E402
from appointment.utils.db_helpers import get_weekday_num_from_date  # noqa: E402

User = get_user_model()
STATE: dict[str, Any] = {}


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def load(cmd: dict[str, Any]) -> dict[str, Any]:
    call_command("migrate", run_syncdb=True, verbosity=0)  # the package ships no migrations
    Config.objects.create(slot_duration=cmd["step"], appointment_buffer_time=0)
    service = Service.objects.create(
        name="bench", duration=dt.timedelta(minutes=cmd["duration"]), price=0
    )
    opens, closes = (_time(t) for t in cmd["hours"])
    ids = {}
    requests, appointments = [], []
    for name, spans in cmd["staff"].items():
        user = User.objects.create_user(username=f"staff-{name}", email=f"{name}@example.com")
        staff = StaffMember.objects.create(user=user, slot_duration=cmd["step"])
        staff.services_offered.add(service)
        WorkingHours.objects.bulk_create(
            WorkingHours(staff_member=staff, day_of_week=d, start_time=opens, end_time=closes)
            for d in range(7)
        )
        ids[name] = staff.id
        for day, start, end in spans:
            requests.append(
                AppointmentRequest(
                    date=dt.date.fromisoformat(day),
                    start_time=_time(start),
                    end_time=_time(end),
                    service=service,
                    staff_member=staff,
                )
            )
    AppointmentRequest.objects.bulk_create(requests, batch_size=500)
    appointments = [Appointment(appointment_request=r, amount_to_pay=0) for r in requests]
    Appointment.objects.bulk_create(appointments, batch_size=500)
    client_user = User.objects.create_user(
        username="client", email="client@example.com", first_name="Bench", last_name="Client"
    )
    http = Client()
    http.force_login(client_user)
    STATE.update(service=service, ids=ids, http=http)
    return {"staff": ids, "appointments": Appointment.objects.count()}


def slots(cmd: dict[str, Any]) -> dict[str, Any]:
    """Each staff member's free starts on each date, combined as `mode=any` does: the starts at
    which at least one of them is free, each with the ones free then."""
    service, ids, http = STATE["service"], STATE["ids"], STATE["http"]
    staff = {name: StaffMember.objects.get(pk=ids[name]) for name in cmd["staff"]}
    dates = [dt.date.fromisoformat(d) for d in cmd["dates"]]
    free: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for day in dates:
        for name, member in staff.items():
            if cmd["via"] == "function":
                found = get_available_slots_for_staff(
                    day, member, get_weekday_num_from_date(day), service=service
                )
                starts = [s.isoformat() for s in found]
            else:
                r = http.get(
                    "/appointment/ajax/available_slots/",
                    {
                        "selected_date": day.isoformat(),
                        "staff_member": member.id,
                        "service_id": service.id,
                    },
                    HTTP_X_REQUESTED_WITH="XMLHttpRequest",
                )
                body = r.json()
                starts = [s for s, _label in body.get("available_slots", [])]
            for s in starts:
                free.setdefault(s, []).append(ids[name])
    ms = (time.perf_counter() - t0) * 1000
    return {"ms": ms, "slots": len(free), "pairs": sum(len(v) for v in free.values())}


def book(cmd: dict[str, Any]) -> dict[str, Any]:
    """Book through the package's own views, as a signed-in client: the request form, then the
    client information form that creates the appointment."""
    service, ids, http = STATE["service"], STATE["ids"], STATE["http"]
    staff_id = ids[cmd["staff"]]
    before = Appointment.objects.count()
    t0 = time.perf_counter()
    r = http.post(
        "/appointment/request-submit/",
        {
            "date": cmd["date"],
            "start_time": cmd["start"],
            "end_time": cmd["end"],
            "service": service.id,
            "staff_member": staff_id,
        },
    )
    steps = [r.status_code]
    if r.status_code == 302:
        r = http.post(
            r["Location"],
            {
                "name": "Bench Client",
                "email": "client@example.com",
                "phone_0": "NO",
                "phone_1": "41234567",
                "want_reminder": "",
                "address": "Oslo",
                "additional_info": "",
                "payment_type": "full",
            },
        )
        steps.append(r.status_code)
    ms = (time.perf_counter() - t0) * 1000
    created = Appointment.objects.count() - before
    same_time = Appointment.objects.filter(
        appointment_request__staff_member_id=staff_id,
        appointment_request__date=cmd["date"],
        appointment_request__start_time__lt=_time(cmd["end"]),
        appointment_request__end_time__gt=_time(cmd["start"]),
    ).count()
    return {"ms": ms, "created": created, "status": steps, "overlapping_now": same_time}


def main() -> None:
    ops = {"load": load, "slots": slots, "book": book}
    print(json.dumps({"ready": django.get_version()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            answer = ops[cmd["op"]](cmd)
        except Exception as exc:  # reported to the parent, which stops the benchmark
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
