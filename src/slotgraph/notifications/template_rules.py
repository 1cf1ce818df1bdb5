"""What an app's own email template may hold: formatting, and work that grows with its length.

An app's templates (`notifications.templates`, set with its secret key) are rendered by the worker,
which runs inside `serve` and shares its event loop with every app's requests. Jinja2's sandbox
keeps a template from reaching into the server, but not from working without end:
`{% for %}` inside `{% for %}` over `range(100000)`, `"x" * 10**9`, `|center(10**9)`, a macro that
calls itself twice, `"%999999999d"` formatting, a variable doubled by `{% set %}` thirty times.
One template held the server for all apps; a few held gigabytes.

So an app's template may hold text, `{{ expressions }}` of names, attributes, items, constants,
comparisons, `and`/`or`/`not`, `~` and `+`, `{% if %}`, the gettext calls (`_()`, `{% trans %}`)
and the filters below without numbers; nothing that loops, repeats, defines or includes. What
such a template renders grows with its length times the longest value in the context. The
built-in templates hold nothing else (`{% if %}` and expressions). The rule is checked when the
template is stored (`PUT /v1/app`: 422) and again before a stored one is used.
"""

from __future__ import annotations

import re

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Filter,
    nodes.Test,
    nodes.Call,
    nodes.Keyword,
    nodes.MarkSafe,
    nodes.MarkSafeIfAutoescape,
    nodes.List,
    nodes.Tuple,
    nodes.Dict,
    nodes.Pair,
    nodes.ScopedEvalContextModifier,
    nodes.EvalContextModifier,
)
# Filters whose work is one pass over their value (no width, count or repeat argument).
ALLOWED_FILTERS = frozenset(
    {
        "e",
        "escape",
        "forceescape",
        "safe",
        "upper",
        "lower",
        "title",
        "capitalize",
        "trim",
        "striptags",
        "default",
        "d",
        "length",
        "count",
        "string",
        "urlencode",
        "first",
        "last",
    }
)
# The gettext calls, and how many of their first arguments are text to format (then a count).
_MESSAGES = {"_": 1, "gettext": 1, "pgettext": 2, "ngettext": 2, "npgettext": 3}
GETTEXT = frozenset(_MESSAGES)
# Filters whose output is longer than their value, again on their own output ("%" -> "%25" ->
# "%2525", "&" -> "&amp;" -> "&amp;amp;"): a chain of k costs k x k x the value's length (190
# urlencodes of a 10,000-character `details`: 13 s of CPU), so one value passes one of them.
# (`escape` leaves its own output, Markup, as it is: it only grows what forceescape passes it.)
_GROWING = frozenset({"urlencode", "forceescape"})
# A %-format with a width or precision ("%999999999d", "%(n).999999999f"): gettext formats its
# message with the keyword arguments.
_WIDE_FORMAT = re.compile(r"%(\([^)]*\))?[-#0 +]*(\d|\*|\.\d)")

_PARSER = SandboxedEnvironment(extensions=["jinja2.ext.i18n"])
_PARSER.install_null_translations(newstyle=True)  # type: ignore[attr-defined]


def problem(source: str) -> str | None:
    """Why an app may not use `source` as a template; None if it may."""
    try:
        tree = _PARSER.parse(source)
    except TemplateSyntaxError as exc:
        return f"not a template: {exc.message} (line {exc.lineno})"
    for node in tree.find_all(nodes.Node):
        refused = _refused(node)
        if refused is not None:
            return refused
    return None


def _refused(node: nodes.Node) -> str | None:
    if not isinstance(node, ALLOWED_NODES):
        return f"{_what(node)} is not allowed in an app's template (docs/emails.md)"
    if isinstance(node, nodes.Filter):
        if node.name not in ALLOWED_FILTERS:
            return f"the filter {node.name!r} is not allowed in an app's template"
        if node.name in _GROWING and node.node is not None and _grown(node.node):
            return f"the filter {node.name!r} may not take urlencode's or forceescape's output"
        arguments = [*node.args, *(k.value for k in node.kwargs)]
        if arguments and (node.name not in ("default", "d") or not _short_constants(arguments)):
            return f"the filter {node.name!r} takes no arguments but a constant default here"
    if isinstance(node, nodes.Call):
        if not (isinstance(node.node, nodes.Name) and node.node.name in GETTEXT):
            return "only the gettext calls (_, gettext, ngettext) may be called"
        # The message is formatted (`%`) with the call's keywords: one from the context (a
        # customer's name "%0999999999d") would be a width this rule never saw.
        messages = node.args[: _MESSAGES[node.node.name]]
        whole = len(messages) == _MESSAGES[node.node.name] and all(map(_is_text, messages))
        if node.dyn_args or node.dyn_kwargs or not whole:
            return "a gettext call's message must be written in the template, not a variable"
    wide = isinstance(node, nodes.Const) and isinstance(node.value, str)
    if wide and _WIDE_FORMAT.search(node.value):  # type: ignore[attr-defined]
        return "a %-format with a width or precision is not allowed"
    return None


def _grown(value: nodes.Node) -> bool:
    """Whether `value` holds the output of a `_GROWING` filter (itself, or any part of it)."""
    filters = [value, *value.find_all(nodes.Filter)]
    return any(isinstance(f, nodes.Filter) and f.name in _GROWING for f in filters)


def _is_text(node: nodes.Expr) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str)


def _short_constants(args: list[nodes.Expr]) -> bool:
    return all(isinstance(a, nodes.Const) and len(str(a.value)) <= 200 for a in args)


_WHAT = {
    nodes.For: "{% for %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.With: "{% with %}",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
    nodes.Block: "{% block %}",
    nodes.Mul: "`*`",
    nodes.Pow: "`**`",
    nodes.Mod: "`%`",
    nodes.Div: "`/`",
    nodes.FloorDiv: "`//`",
}


def _what(node: nodes.Node) -> str:
    return _WHAT.get(type(node), type(node).__name__)
