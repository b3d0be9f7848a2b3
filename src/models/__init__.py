"""The model families: each module holds one family's nn.Module (its schema is in src/config/schema.py)."""
