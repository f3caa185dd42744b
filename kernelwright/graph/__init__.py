"""The LangGraph state machine (planner -> coder -> evaluate -> fix -> profile -> critic)."""
