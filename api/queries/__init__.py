"""Query fields, one module per noun; ``api.schema`` merges them into ``Query``."""
