"""One module per resource; handlers are named verb_noun (tozo's style)."""
