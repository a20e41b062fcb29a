"""Channel adapters: send one rendered message to one address. Knows nothing of warning_service."""
