"""The config: its typed schemas, its closed choices, and errors as the user sees them."""
