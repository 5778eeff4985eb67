"""Simulated and replayed crowds: the workforce simulator (workers with profiles answering over the
dispatcher's API) and replays of real crowd answers (Snow 2008) under the project's worker rules."""
