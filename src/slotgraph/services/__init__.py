"""Use cases. One function per use case; each owns exactly one transaction.

Pattern: load -> lock -> re-check with domain/ -> transition -> history + outbox -> commit.
Every function takes the session first and keyword-only arguments after it.
"""
