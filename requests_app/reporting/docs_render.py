"""A small, safe Markdown renderer for the project's own guides (docs/*.md) shown as pages.

It knows what those guides use: ATX headings, paragraphs, fenced and indented code blocks,
ordered and unordered lists (nested by indentation), and inline code, bold, emphasis and links
to http(s) or site paths. Everything is escaped first; only the tags made here reach the page.
It is not a general Markdown implementation and need not be: unknown syntax shows as text.
"""

import re

from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.text import slugify

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^(\s*)(```|~~~)\s*([\w+-]*)\s*$")
ITEM = re.compile(r"^( *)([-*+]|\d{1,9}[.)])( +)(.*)$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
SAFE_URL = re.compile(r"^(https?://|/|#)")


def render_markdown(text):
    """HTML (marked safe) for ``text``."""
    lines = text.replace("\r\n", "\n").replace("\t", "    ").split("\n")
    # Built from escaped parts only (tests/test_audit_page.py feeds it script-like input).
    return mark_safe("\n".join(_blocks(lines)))  # noqa: S308  # nosec B308 B703


def inline(text):
    """Inline markup of one paragraph's text; everything else escaped."""
    out = []
    position = 0
    for match in CODE_SPAN.finditer(text):
        out.append(_inline_text(text[position : match.start()]))
        out.append(f"<code>{escape(match.group(2).strip())}</code>")
        position = match.end()
    out.append(_inline_text(text[position:]))
    return "".join(out)


def _inline_text(text):
    html = escape(text)

    def link(match):
        label, url = match.group(1), match.group(2)
        if not SAFE_URL.match(url):
            return match.group(0)
        return f'<a href="{url}">{label}</a>'  # both already escaped

    html = LINK.sub(link, html)
    html = STRONG.sub(r"<strong>\1</strong>", html)
    return EMPHASIS.sub(r"<em>\1</em>", html)


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _blank(line):
    return not line.strip()


def _starts_block(line):
    return bool(HEADING.match(line) or FENCE.match(line) or ITEM.match(line))


def _blocks(lines):
    html = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _blank(line):
            i += 1
            continue
        fence = FENCE.match(line)
        if fence:
            i, block = _fenced(lines, i, fence)
            html.append(block)
            continue
        heading = HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            title = heading.group(2)
            html.append(f'<h{level} id="{slugify(title)}">{inline(title)}</h{level}>')
            i += 1
            continue
        if ITEM.match(line):
            i, block = _list(lines, i)
            html.append(block)
            continue
        if _indent(line) >= 4:
            i, block = _indented_code(lines, i)
            html.append(block)
            continue
        paragraph = []
        while i < len(lines) and not _blank(lines[i]):
            if paragraph and _starts_block(lines[i]):
                break
            paragraph.append(lines[i].strip())
            i += 1
        html.append(f"<p>{inline(' '.join(paragraph))}</p>")
    return html


def _fenced(lines, i, fence):
    marker, language, margin = fence.group(2), fence.group(3), len(fence.group(1))
    body = []
    i += 1
    while i < len(lines) and lines[i].strip() != marker:
        body.append(lines[i][margin:] if _indent(lines[i]) >= margin else lines[i].lstrip())
        i += 1
    css = f' class="language-{escape(language)}"' if language else ""
    return i + 1, f"<pre><code{css}>{escape(chr(10).join(body))}</code></pre>"


def _indented_code(lines, i):
    body = []
    while i < len(lines) and (_indent(lines[i]) >= 4 or _blank(lines[i])):
        body.append(lines[i][4:])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    return i, f"<pre><code>{escape(chr(10).join(body))}</code></pre>"


def _list(lines, i):
    first = ITEM.match(lines[i])
    margin = len(first.group(1))
    ordered = first.group(2)[0].isdigit()
    items = []
    while i < len(lines):
        match = ITEM.match(lines[i])
        if not match or len(match.group(1)) != margin or match.group(2)[0].isdigit() != ordered:
            break
        content_col = margin + len(match.group(2)) + len(match.group(3))
        body = [match.group(4)]
        i += 1
        while i < len(lines):
            line = lines[i]
            if _blank(line):
                following = next((x for x in lines[i + 1 :] if not _blank(x)), None)
                if following is None or _indent(following) <= margin:
                    break
                body.append("")
            elif _indent(line) > margin:
                body.append(line[min(content_col, _indent(line)) :])
            elif ITEM.match(line) or _starts_block(line):
                break
            else:
                body.append(line.strip())  # a lazy continuation line of the paragraph
            i += 1
        items.append(body)
        # A blank line between items of the same list does not end it.
        if i < len(lines) and _blank(lines[i]):
            following = next((n for n in range(i, len(lines)) if not _blank(lines[n])), None)
            nxt = ITEM.match(lines[following]) if following is not None else None
            if nxt and len(nxt.group(1)) == margin:
                i = following
    tag = "ol" if ordered else "ul"
    start = ""
    if ordered and not first.group(2).startswith("1"):
        start = f' start="{int(first.group(2)[:-1])}"'
    rendered = []
    for body in items:
        blocks = _blocks(body)
        if len(blocks) >= 1 and blocks[0].startswith("<p>") and "" not in body:
            blocks[0] = blocks[0][3:-4]  # a tight item: no paragraph around its first text
        rendered.append(f"<li>{''.join(blocks)}</li>")
    return i, f"<{tag}{start}>{''.join(rendered)}</{tag}>"
