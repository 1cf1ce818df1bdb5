"""The envelopes of list answers."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class Listed(BaseModel, Generic[T]):
    data: list[T]


class Latest(BaseModel, Generic[T]):
    """The latest entries of a list kept whole up to a bound (a booking's history)."""

    data: list[T]
    older_left_out: bool = Field(
        description="true: older entries exist and are not in `data` (it holds the latest)."
    )
    next: str | None = Field(
        default=None,
        description="The path that reads the entries before these (the next page back in "
        "time), when `older_left_out`; else null.",
    )
