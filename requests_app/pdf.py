"""What the portal's PDFs (deletion certificate, evidence report) share: fpdf2 with the core
fonts only (no system packages), text made safe for them, and the same headings and lines."""


def pdf_text(value):
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


def start_document(pdf, title):
    """Set up ``pdf`` (an FPDF) and open its first page; returns ``(heading, line)`` writers."""
    pdf.set_title(pdf_text(title))
    pdf.set_creator("DSR portal")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()

    def heading(text, size=12):
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", size)
        pdf.multi_cell(0, 7, pdf_text(text), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=9)

    def line(text, indent=0):
        width = pdf.epw - indent - 1
        for part in wrap(pdf, pdf_text(text), width):
            pdf.set_x(pdf.l_margin + indent)
            pdf.cell(0, 4.5, part, new_x="LMARGIN", new_y="NEXT")

    return heading, line


def wrap(pdf, text, width):
    """Lines of ``text`` that fit ``width`` in the current font: at spaces where possible,
    anywhere in a long path or hash. fpdf2's multi_cell does the same but re-measures every
    prefix, which made a 1,000-device certificate take minutes; this measures each character
    once (cached per font)."""
    key = (pdf.font_family, pdf.font_style, pdf.font_size_pt)
    widths = _char_widths.setdefault(key, {})

    def w(ch):
        if ch not in widths:
            widths[ch] = pdf.get_string_width(ch)
        return widths[ch]

    lines = []
    for paragraph in text.split("\n"):
        current, current_w, last_space = [], 0.0, -1
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


_char_widths = {}
