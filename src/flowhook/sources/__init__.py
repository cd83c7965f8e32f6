"""Event sources: how things outside become flowhook events. `webhook` configures the gateway's
signed HTTP sources (scheme, secret, body format, limits)."""
