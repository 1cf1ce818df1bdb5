"""The Timekit adapter: Timekit's /v2 API over slotgraph's services.

See docs/migrating-from-timekit.md.
Each module translates one kind of thing, with its translation table at the top; nothing here
decides whether a booking is allowed.
"""
