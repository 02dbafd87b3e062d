"""Markdown and math as safe HTML: students' answers, model answers, tutors' comments, messages.

Pure functions (text in, :class:`~markupsafe.Markup` out) shared by the reports, the review pages
and the tutors' web app. The pages carry a Content-Security-Policy that forbids every script, so
math is rendered on the server: ``$...$`` and ``$$...$$`` (mdit-py-plugins' dollarmath, which
takes the formula out before any markdown rule can see it) become MathML with latex2mathml.

Trust boundary: everything here may come from a student. markdown-it renders, then nh3 cleans
with an allow-list (HTML and MathML elements, attributes per element, attribute values checked).
A formula's MathML is additionally rebuilt from a parsed, validated tree before nh3 sees it, so a
formula that latex2mathml does not convert cleanly (an unknown command, a brace left open, raw
``&`` or ``<``) is shown as its LaTeX source in a code element instead of half-rendered.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

import nh3
from latex2mathml.converter import convert as _latex2mathml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape
from mdit_py_plugins.dollarmath import dollarmath_plugin

from grader.cleantext import UNDRAWN_TAGS, strip_controls

__all__ = ["render_markdown", "render_comment", "render_inline", "latex_to_mathml", "MATHML_TAGS"]

# Bounds on the grader's work per page: a written answer is a few hundred words, so these are far
# above anything real and only stop a submission that pastes megabytes into a cell.
MAX_MARKDOWN_CHARS = 200_000
MAX_FORMULA_CHARS = 2_000  # latex2mathml takes ~0.1 s for 2000 chars of dense formula
MAX_FORMULAS = 400  # per rendered text; further formulas are shown as their source
MAX_MATH_CHARS = 20_000  # LaTeX converted per rendered text (~0.3 s); the rest is shown as source
MAX_IMAGE_CHARS = 2_800_000  # base64 of a ~2 MB drawing (11.3.2 allows a photo of a sketch)

_MATHML_NS = "{http://www.w3.org/1998/Math/MathML}"

# Presentation MathML as latex2mathml writes it. Left out on purpose: `maction` (interactive),
# `annotation-xml` (may embed HTML/SVG), `semantics`/`annotation` (source text, not needed),
# and the attributes `href`, `xlink:href`, `style`, `class`, `id`, `mathcolor`, `mathbackground`,
# `src`: links, CSS (url()), and ids that could clash with the page's anchors.
MATHML_TAGS = frozenset({
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup",
    "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd",
    "mstyle", "mpadded", "menclose", "merror", "mmultiscripts", "mprescripts", "none",
})
_MATHML_ATTRIBUTES = frozenset({
    "display", "mathvariant", "stretchy", "fence", "form", "separator", "accent", "accentunder",
    "lspace", "rspace", "minsize", "maxsize", "movablelimits", "largeop", "symmetric", "width",
    "height", "depth", "voffset", "linethickness", "columnalign", "rowalign", "columnspacing",
    "rowspacing", "columnlines", "rowlines", "frame", "displaystyle", "scriptlevel", "notation",
    "linebreak",
})
# Values of those attributes are keywords and lengths ("true", "bold-italic", "0.167em", "-1"):
# nothing with a colon, parenthesis, quote or slash can get through (no url(), no javascript:).
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9 .%#+-]{0,64}$")

_HTML_TAGS = frozenset({
    "p", "br", "em", "strong", "code", "pre", "ul", "ol", "li", "blockquote", "h1", "h2", "h3",
    "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "a", "img", "hr", "del", "sub",
    "sup", "span", "div",
})
_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href"}, "img": {"src", "alt"}, "span": {"class"}, "div": {"class"}, "code": {"class"},
    "pre": {"class"}, "th": {"align"}, "td": {"align"}, "ol": {"start"},
    **{tag: set(_MATHML_ATTRIBUTES) for tag in MATHML_TAGS},
}
# Our own markers only: a student's class="..." must not borrow the page's styles (e.g. `.pass`).
_CLASSES = frozenset({"math-display", "math-source", "math-inline"})
_RASTER = re.compile(r"^data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]+$")


# What a reader sees is what the rules read (grader/written/answertext.py): content that is not drawn is
# removed (``mphantom`` and the UNDRAWN_TAGS, with their content), and no box may hide, shrink or
# move its content out of the answer. ``mpadded`` keeps no attribute (a zero size clips, a voffset
# raises), ``voffset`` is dropped everywhere, every length is a non-negative size of at most
# MAX_MATH_LENGTH em (or named), and ``scriptlevel`` may only go a step or two down.
MAX_MATH_LENGTH = 5.0
_LENGTH_ATTRIBUTES = frozenset({"width", "height", "depth", "lspace", "rspace", "minsize", "maxsize",
                                "linethickness", "columnspacing", "rowspacing"})
_LENGTH = re.compile(r"^(\d{1,3}(?:\.\d{1,4})?|\.\d{1,4})(em|ex|px|pt|mm|%)?$")
_UNIT_EM = {"em": 1.0, "ex": 0.5, "px": 1 / 16, "pt": 1 / 12, "mm": 1 / 4.2, "%": 0.01, "": 1.0}
_NAMED_SPACES = frozenset({"veryverythinmathspace", "verythinmathspace", "thinmathspace",
                           "mediummathspace", "thickmathspace", "verythickmathspace",
                           "veryverythickmathspace", "thin", "medium", "thick", "0", "auto", "infinity"})
_SCRIPTLEVELS = frozenset({"0", "1", "2", "+1", "+2", "-1"})
# Deeper nesting than this in an answer's HTML is shown as its source: html5ever's work grows with
# the depth of the open elements (200,000 characters of <ul><li> took 12 s), real answers nest a
# few levels (markdown itself stops at 20).
MAX_HTML_DEPTH = 100
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                   "source", "track", "wbr", "param", "mspace", "none", "mprescripts"})
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]{0,40})(?:\s[^<>]*)?>")


def _bounded_length(value: str) -> str | None:
    v = value.strip()
    if v in _NAMED_SPACES:
        return v if v != "infinity" else None
    m = _LENGTH.match(v)
    if not m:
        return None
    return v if float(m.group(1)) * _UNIT_EM[m.group(2) or ""] <= MAX_MATH_LENGTH else None


def _html_depth(html: str) -> int:
    """The deepest nesting of elements in ``html`` (an upper bound: unclosed elements count as
    open), in one pass."""
    depth = deepest = 0
    for m in _TAG.finditer(html):
        if m.group(2).lower() in _VOID or m.group(0).endswith("/>"):
            continue
        depth = max(0, depth - 1) if m.group(1) else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _keep_attribute(element: str, attribute: str, value: str) -> str | None:
    """nh3's last word on each attribute that survived the allow-list."""
    if element == "mpadded" or attribute == "voffset":
        return None
    if element in MATHML_TAGS and attribute in _LENGTH_ATTRIBUTES:
        return _bounded_length(value)
    if attribute == "scriptlevel":
        return value.strip() if value.strip() in _SCRIPTLEVELS else None
    if element == "img" and attribute == "src":
        return value if len(value) <= MAX_IMAGE_CHARS + 32 and _RASTER.match(value) else None
    if element == "a" and attribute == "href":
        return value if value.startswith(("http://", "https://")) else None
    if attribute == "class":
        kept = [c for c in value.split() if c in _CLASSES]
        return " ".join(kept) or None
    if element in MATHML_TAGS:
        return value if _SAFE_VALUE.match(value) else None
    if attribute == "align":
        return value if value in ("left", "right", "center") else None
    if attribute == "start":
        return value if value.isdigit() and len(value) < 7 else None
    return value


def _clean(html: str) -> str:
    return nh3.clean(html, tags=set(_HTML_TAGS | MATHML_TAGS), attributes=_ATTRIBUTES,
                     clean_content_tags=set(UNDRAWN_TAGS),
                     url_schemes={"http", "https", "data"}, attribute_filter=_keep_attribute,
                     link_rel="noopener noreferrer nofollow")


# -- math -------------------------------------------------------------------------------------
class _NotConverted(Exception):
    """latex2mathml's output is not clean presentation MathML."""


def _rebuild(node: ET.Element, out: list[str]) -> None:
    if not node.tag.startswith(_MATHML_NS):
        raise _NotConverted(node.tag)
    tag = node.tag[len(_MATHML_NS):]
    if tag == "mphantom":  # \phantom: draws nothing (its size is not worth keeping)
        return
    if tag not in MATHML_TAGS:
        raise _NotConverted(tag)
    attrs = []
    for name, value in sorted(node.attrib.items()):
        if name not in _MATHML_ATTRIBUTES or not _SAFE_VALUE.match(value):
            raise _NotConverted(name)
        attrs.append(f' {name}="{escape(value)}"')
    text = node.text or ""
    # An unknown command comes back as an identifier that still holds its backslash (`\foo`);
    # a stray brace as an identifier `{` or `}`: the formula was not understood.
    if tag == "mi" and (text.startswith("\\") or text in ("{", "}")):
        raise _NotConverted(text)
    out.append(f"<{tag}{''.join(attrs)}>{escape(text)}")
    for child in node:
        _rebuild(child, out)
        out.append(str(escape(child.tail or "")))
    out.append(f"</{tag}>")


def latex_to_mathml(latex: str, display: bool = False) -> str | None:
    """``latex`` as a ``<math>`` element, or None where it does not convert cleanly."""
    if not latex.strip() or len(latex) > MAX_FORMULA_CHARS:
        return None
    try:
        raw = _latex2mathml(latex, display="block" if display else "inline")
        tree = ET.fromstring(raw)
        out: list[str] = []
        _rebuild(tree, out)
    except (_NotConverted, ET.ParseError, RecursionError, MemoryError):
        return None
    except Exception:  # noqa: BLE001 - latex2mathml raises many types for bad LaTeX; show the source
        return None
    return "".join(out)


def _source(latex: str, display: bool) -> str:
    delimiter = "$$" if display else "$"
    shown = escape(f"{delimiter}{latex}{delimiter}")
    if display:
        return f'<pre class="math-source"><code>{shown}</code></pre>\n'
    return f'<code class="math-source">{shown}</code>'


def _math_rules(md: MarkdownIt) -> None:
    """Render dollarmath's tokens as MathML (or the source as code), within MAX_FORMULAS and
    MAX_MATH_CHARS per text: the grader's time per report stays bounded."""

    def formula(latex: str, display: bool, env: dict[str, Any]) -> str:
        env["formulas"] = env.get("formulas", 0) + 1
        env["math_chars"] = env.get("math_chars", 0) + len(latex)
        within = env["formulas"] <= MAX_FORMULAS and env["math_chars"] <= MAX_MATH_CHARS
        mathml = latex_to_mathml(latex, display) if within else None
        if mathml is None:
            return _source(latex, display)
        if display:
            return f'<div class="math-display">{mathml}</div>\n'
        return mathml

    def inline(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        return formula(tokens[idx].content, False, env)

    def inline_double(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        return formula(tokens[idx].content, True, env)

    def block(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        return formula(tokens[idx].content.strip(), True, env)

    md.add_render_rule("math_inline", inline)
    md.add_render_rule("math_inline_double", inline_double)
    md.add_render_rule("math_block", block)
    md.add_render_rule("math_block_label", block)


def _image_rule(md: MarkdownIt) -> None:
    """`attachment:NAME` images point at the cell's own attachment (a raster data URI) or nowhere."""
    default = md.renderer.rules.get("image")  # type: ignore[attr-defined]  # RendererHTML's rules

    def image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        if src.startswith("attachment:"):
            # Each attachment is inlined once per text: one 1 MB drawing referred to 100 times
            # made a 140 MB report. Later references show no picture (their alt text stays).
            name = src[len("attachment:"):]
            shown = env.setdefault("attachments_shown", set())
            token.attrSet("src", "" if name in shown else _attachment_uri(env.get("attachments") or {}, name))
            shown.add(name)
        return str(default(tokens, idx, options, env) if default else self.renderToken(tokens, idx, options, env))

    md.add_render_rule("image", image)


def _attachment_uri(attachments: Mapping[str, Any], name: str) -> str:
    bundle = attachments.get(name) if isinstance(attachments, Mapping) else None
    if not isinstance(bundle, Mapping):
        return ""
    for mime in ("image/png", "image/jpeg", "image/gif"):
        data = bundle.get(mime)
        if isinstance(data, str) and len(data) <= MAX_IMAGE_CHARS and _BASE64.match(data):
            return f"data:{mime};base64,{''.join(data.split())}"
    return ""  # svg, oversized or not base64: no picture (the alt text stays)


def _parser(html: bool) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": html}).enable(["table", "strikethrough"])
    # allow_space/allow_digits off: "costs $5 and $10" stays text, as students write it.
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True,
           allow_labels=False)
    _math_rules(md)
    _image_rule(md)
    return md


_BLOCK = _parser(html=True)  # students' answers may hold HTML (e.g. <sub>): nh3 cleans it
_MESSAGE = _parser(html=False)  # the grader's messages quote student values: never markup


def _capped(source: str) -> tuple[str, str]:
    if len(source) <= MAX_MARKDOWN_CHARS:
        return source, ""
    note = f"<p><em>(cut here: the text is longer than {MAX_MARKDOWN_CHARS} characters)</em></p>"
    return source[:MAX_MARKDOWN_CHARS], note


def render_markdown(source: str, attachments: Mapping[str, Any] | None = None) -> Markup:
    """Markdown (with math) as safe HTML: no script, no event handler, no link but http(s).

    ``attachments`` are the cell's attachments (nbformat: name -> {mime: base64}); images that
    refer to them as ``attachment:NAME`` are shown when they are PNG, JPEG or GIF under the size
    cap. Any other image source is dropped.
    """
    text, note = _capped(strip_controls(source) if isinstance(source, str) else "")
    html = _BLOCK.render(text, {"attachments": attachments or {}})
    if _html_depth(html) > MAX_HTML_DEPTH:
        html = (f"<p><em>(shown as its source: its HTML nests deeper than {MAX_HTML_DEPTH} levels)</em></p>"
                f"<pre><code>{escape(text)}</code></pre>")
    return Markup(_clean(html + note))


def render_comment(source: str) -> Markup:
    """A tutor's comment: markdown and math like an answer, but HTML in it is shown as text (a
    comment comes from a spreadsheet cell, where `<b>` is more likely meant literally)."""
    text, note = _capped(strip_controls(source) if isinstance(source, str) else "")
    return Markup(_clean(_MESSAGE.render(text, {}) + note))


def render_inline(text: str) -> Markup:
    """One line of the grader's own wording (a flag, a check's message) with `code` and math
    rendered; HTML in it (e.g. quoted from a student's output) is shown as text."""
    line, _ = _capped(strip_controls(text) if isinstance(text, str) else "")
    return Markup(_clean(_MESSAGE.renderInline(line, {})))
