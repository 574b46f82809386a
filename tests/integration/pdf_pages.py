"""Render a PDF page to pixels (pypdfium2, a pip wheel: no poppler on the machine needed) and
say how much of it is ink, so a test can see that a page really draws its text."""

from __future__ import annotations

import pypdfium2


def render_first_page(pdf: bytes, *, dpi: int = 60) -> tuple[bytes, float]:
    """PNG bytes of page 1 and the share of its pixels that are dark (ink)."""
    import io

    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[0].render(scale=dpi / 72).to_pil().convert("L")
    finally:
        document.close()
    histogram = image.histogram()
    dark = sum(histogram[:128])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), dark / (image.width * image.height)
