"""Hypothesis over the parsers that take outside input (issue 17): a crash, a hang or an
unclear error is a bug. Each parser may refuse input only with its own error type."""
