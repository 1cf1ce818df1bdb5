"""Webhooks: signing, the SSRF guard, HTTP delivery, and the worker loop."""
