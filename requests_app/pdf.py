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
        pdf.set_x(pdf.l_margin + indent)
        pdf.multi_cell(0, 4.5, pdf_text(text), new_x="LMARGIN", new_y="NEXT")

    return heading, line
