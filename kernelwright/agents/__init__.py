"""Agent roles, each with an LLM policy and an offline policy."""
