"""amiflow identity: who may call the platform — credentials, roles, and the tokens that carry them."""
