"""What proves the work: the export store and archive, the deletion certificate, the evidence
report, redaction, PDFs, the subject's history and the signed audit checkpoints."""
