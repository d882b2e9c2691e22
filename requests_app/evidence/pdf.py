"""What the portal's PDFs (deletion certificate, evidence report) share: fpdf2 with the core
fonts only (no system packages), text made safe for them, the same headings and lines, and
tables. Lines are wrapped here (``wrap``), never by fpdf2's multi_cell, which is too slow for a
certificate of thousands of devices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from fpdf import FPDF


class Heading(Protocol):
    """Writes a heading (``start_document``)."""

    def __call__(self, text: str, size: int = 12) -> None: ...


class Line(Protocol):
    """Writes a wrapped line of body text, indented by ``indent`` mm (``start_document``)."""

    def __call__(self, text: str, indent: float = 0) -> None: ...


class PortalPdf(FPDF):
    """An A4 page with the document's one footer line: ``footer_text`` and the page number."""

    footer_text = ""

    def __init__(self, footer_text: str) -> None:
        super().__init__(format="A4")
        self.footer_text = footer_text

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.cell(0, 5, pdf_text(f"{self.footer_text} - page {self.page_no()}/{{nb}}"), align="C")


def pdf_text(value: object) -> str:
    """Latin-1 text for the core fonts: anything else (and control characters) as escapes."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        code = ord(ch)
        if code == 10 or (32 <= code < 127) or (160 <= code < 256):
            out.append(ch)
        elif code < 256:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def start_document(pdf: FPDF, title: str) -> tuple[Heading, Line]:
    """Set up ``pdf`` (an FPDF) and open its first page; returns ``(heading, line)`` writers."""
    pdf.set_title(pdf_text(title))
    pdf.set_creator("DSR portal")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()

    def heading(text: str, size: int = 12) -> None:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(0, 7, pdf_text(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)

    def line(text: str, indent: float = 0) -> None:
        width = pdf.epw - indent - 1
        for part in wrap(pdf, pdf_text(text), width):
            pdf.set_x(pdf.l_margin + indent)
            pdf.cell(0, 4.5, part, new_x="LMARGIN", new_y="NEXT")

    return heading, line


def table(
    pdf: FPDF,
    columns: Sequence[tuple[str, float]],
    rows: Iterable[Sequence[object]],
    *,
    header: bool = True,
    size: float = 8,
    leading: float = 3.8,
) -> None:
    """Draw ``rows`` (lists of cell values) in columns ``((title, share of the width), ...)``.

    Each cell wraps within its column; a row never splits across pages; the header row comes
    again at the top of each new page. Leaves the cursor under the table, in the body font.
    """
    widths = [pdf.epw * share for _, share in columns]
    pad = 1.2

    def draw(cells: Sequence[object], is_header: bool = False) -> None:
        wrapped = [
            wrap(pdf, pdf_text(cell), w - 2 * pad) for cell, w in zip(cells, widths, strict=True)
        ]
        height = max(len(lines) for lines in wrapped) * leading + 1.2
        # The header needs room for a row under it, or it would stand alone at a page's foot.
        room = height + (2 * leading if is_header else 0)
        if pdf.get_y() + room > pdf.page_break_trigger:
            pdf.add_page()
            if header and not is_header:
                heading_row()
        x, y = pdf.l_margin, pdf.get_y()
        if is_header:
            pdf.set_fill_color(232, 236, 240)
            pdf.rect(x, y, pdf.epw, height, style="F")
        for lines, w in zip(wrapped, widths, strict=True):
            for number, text in enumerate(lines):
                pdf.set_xy(x + pad, y + 0.6 + number * leading)
                pdf.cell(w - 2 * pad, leading, text)
            x += w
        pdf.set_draw_color(200, 200, 200)
        pdf.line(pdf.l_margin, y + height, pdf.l_margin + pdf.epw, y + height)
        pdf.set_xy(pdf.l_margin, y + height)

    def heading_row() -> None:
        pdf.set_font("Helvetica", "B", size)
        draw([title for title, _ in columns], is_header=True)
        pdf.set_font("Helvetica", size=size)

    if header:
        heading_row()
    pdf.set_font("Helvetica", size=size)
    for row in rows:
        draw(row)
    pdf.set_font("Helvetica", size=9)


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Lines of ``text`` that fit ``width`` in the current font: at spaces where possible,
    anywhere in a long path or hash. fpdf2's multi_cell does the same but re-measures every
    prefix, which made a 1,000-device certificate take minutes; this measures each character
    once (cached per font)."""
    key = (pdf.font_family, pdf.font_style, pdf.font_size_pt)
    widths = _char_widths.setdefault(key, {})

    def w(ch: str) -> float:
        if ch not in widths:
            widths[ch] = pdf.get_string_width(ch)
        return widths[ch]

    lines: list[str] = []
    for paragraph in text.split("\n"):
        current: list[str] = []
        current_w, last_space = 0.0, -1
        for ch in paragraph:
            cw = w(ch)
            if current and current_w + cw > width:
                if last_space > 0:  # break at the last space, carry the rest over
                    lines.append("".join(current[:last_space]))
                    current = current[last_space + 1 :]
                else:
                    lines.append("".join(current))
                    current = []
                current_w = sum(w(c) for c in current)
                last_space = max((i for i, c in enumerate(current) if c == " "), default=-1)
            if ch == " ":
                last_space = len(current)
            current.append(ch)
            current_w += cw
        lines.append("".join(current))
    return lines


_char_widths: dict[tuple[str, str, float], dict[str, float]] = {}
