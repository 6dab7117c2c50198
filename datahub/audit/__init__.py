"""Query audit: every query's submitted and finished events, history, metrics (issue 4)."""
