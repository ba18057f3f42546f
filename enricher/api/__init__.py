"""The GTI API: the wire format, HTTP, authentication, retries and the rate limiter."""
