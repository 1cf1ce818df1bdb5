"""The envelopes of list answers."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None


class Listed(BaseModel, Generic[T]):
    data: list[T]
