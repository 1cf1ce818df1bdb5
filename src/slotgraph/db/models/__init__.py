"""SQLAlchemy models. No relationships: queries are explicit, nothing loads lazily by accident.

One module per thing held (ADR 0006); import from here, `from slotgraph.db.models import Booking`:
- `base`: the declarative base, the naming convention, the JSON type, `new_id`, `table_of`;
- `apps`: apps, their API keys and stored idempotent answers;
- `resources`: resources, their blocks of time off, their connected calendars;
- `clients`: who books;
- `bookings`: bookings, the slots they hold, their secret links, their history;
- `outbox`: events, the targets they go to, deliveries and the attempt log;
- `pages`: booking pages and Timekit-style projects;
- `instance`: the installation's secrets and the workers' heartbeats.
"""

from slotgraph.db.models.apps import ApiKey, App, IdempotencyKey
from slotgraph.db.models.base import Base, JSONType, new_id, table_of
from slotgraph.db.models.bookings import (
    BOOKING_HOLDS,
    BOOKING_TOKENS,
    BOOKING_TRANSITIONS,
    BOOKINGS,
    Booking,
    BookingHold,
    BookingToken,
    BookingTransition,
    NewBooking,
)
from slotgraph.db.models.clients import Client
from slotgraph.db.models.instance import InstanceSecret, WorkerHeartbeat
from slotgraph.db.models.outbox import (
    EVENTS,
    Delivery,
    DeliveryAttempt,
    EmailQuota,
    Event,
    UndispatchedEvent,
    WebhookEndpoint,
)
from slotgraph.db.models.pages import BookingPage, Project
from slotgraph.db.models.resources import CalendarConnection, Resource, ResourceBlock

__all__ = [
    "BOOKINGS",
    "BOOKING_HOLDS",
    "BOOKING_TOKENS",
    "BOOKING_TRANSITIONS",
    "EVENTS",
    "ApiKey",
    "App",
    "Base",
    "Booking",
    "BookingHold",
    "BookingPage",
    "BookingToken",
    "BookingTransition",
    "CalendarConnection",
    "Client",
    "Delivery",
    "DeliveryAttempt",
    "EmailQuota",
    "Event",
    "IdempotencyKey",
    "InstanceSecret",
    "JSONType",
    "NewBooking",
    "Project",
    "Resource",
    "ResourceBlock",
    "UndispatchedEvent",
    "WebhookEndpoint",
    "WorkerHeartbeat",
    "new_id",
    "table_of",
]
