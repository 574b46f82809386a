"""PDF rendering of customer documents (fpdf2)."""
