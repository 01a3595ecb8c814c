"""Policy evaluation, aggregate statistics and reports."""
