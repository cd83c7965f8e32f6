"""Event sources: how things outside become flowhook events. They deliver to the gateway (`sink`, `pool`)
or produce events themselves (`emit`, `files`, `sqs`); the gateway's own signed HTTP sources (scheme,
secret, body format, limits) are configured in `flowhook.gateway.sources`."""
