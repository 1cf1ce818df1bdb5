"""The public JSON contract: request and response models.

The API validates requests with these, and the outbox serialises `BookingOut` into event payloads,
so a webhook receiver sees a booking exactly as `GET /v1/bookings/{id}` shows it.

One module per part of the contract (ADR 0006); import from here,
`from slotgraph.schemas import BookingOut`:
- `fields`: the validated field types every request shares, and `Input`, every request's base;
- `resources`, `clients`, `bookings`, `availability`: each part's requests and answers;
- `lists`: the envelopes of list answers.
"""

from slotgraph.schemas.availability import BlockCreate, BlockCreated, BlockOut, GroupSlot, Slot
from slotgraph.schemas.bookings import (
    ActionBody,
    BookingCreate,
    BookingCreated,
    BookingOut,
    BookingUpdate,
    TransitionOut,
)
from slotgraph.schemas.clients import ClientCreate, ClientOut, ClientUpdate, Customer
from slotgraph.schemas.fields import (
    MAX_META_BYTES,
    STATUSES,
    WEEKDAY_NAMES,
    Email,
    GraphName,
    HoursList,
    Input,
    Locale,
    Meta,
    Name,
    PersonName,
    StatusName,
    Text,
    TimeZone,
    WeeklyHours,
    has_control,
)
from slotgraph.schemas.lists import Latest, Listed, Page
from slotgraph.schemas.resources import (
    AvailabilityRules,
    AvailabilityRulesOut,
    DateHours,
    Exceptions,
    ResourceCreate,
    ResourceOut,
    ResourceUpdate,
)

__all__ = [
    "MAX_META_BYTES",
    "STATUSES",
    "WEEKDAY_NAMES",
    "ActionBody",
    "AvailabilityRules",
    "AvailabilityRulesOut",
    "BlockCreate",
    "BlockCreated",
    "BlockOut",
    "BookingCreate",
    "BookingCreated",
    "BookingOut",
    "BookingUpdate",
    "ClientCreate",
    "ClientOut",
    "ClientUpdate",
    "Customer",
    "DateHours",
    "Email",
    "Exceptions",
    "GraphName",
    "GroupSlot",
    "HoursList",
    "Input",
    "Latest",
    "Listed",
    "Locale",
    "Meta",
    "Name",
    "Page",
    "PersonName",
    "ResourceCreate",
    "ResourceOut",
    "ResourceUpdate",
    "Slot",
    "StatusName",
    "Text",
    "TimeZone",
    "TransitionOut",
    "WeeklyHours",
    "has_control",
]
