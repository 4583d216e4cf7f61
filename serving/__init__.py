"""The FastAPI app over jstore: online lookups, training sets, the registry and quality reports."""
