"""The customer's side in HTML: booking pages (`/book/{slug}`) and manage links (`/manage/{token}`).

A way in like api/: each route reads a form or a query, calls one service and renders one template.
No booking rule lives here. The pieces:

- `locales/<locale>.po`: the translation catalogues, read at start (no build step) by
  slotgraph/i18n.py, which formats dates and times with Babel too (the emails use it as well).
- `templating.py`: one Jinja2 environment per locale (autoescaped) and `render()`, which sets
  the security headers and the CSRF cookie on every page.
- `security.py`: the CSRF double-submit cookie and the security headers (CSP, frame-ancestors).
- `forms.py`: a bounded reader for `application/x-www-form-urlencoded` bodies.
"""
