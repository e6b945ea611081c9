"""Audiences: the rule language (AST, text form, vocabulary) and its pure evaluator.

Live membership, the timer of window edges and campaigns build on these (see docs/audiences.md).
"""
