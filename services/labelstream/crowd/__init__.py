"""Crowd statistics every service may share: worker rules (qualification, hidden-gold rate, Beta
skill, blocking, fraud signals, fair pay), gold accuracy, Dawid-Skene (full and one-coin, with
incremental posteriors), voting, aggregation decisions and inter-annotator agreement. Pure code:
no I/O, and it imports no service."""
