"""Evaluation harness and the tools agents call. Never imports LangGraph or LangChain."""
