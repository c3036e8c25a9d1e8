"""Sequential models: next-item recommendation from the order of a user's items."""
