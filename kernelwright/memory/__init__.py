"""Value-driven experience memory in Qdrant."""
