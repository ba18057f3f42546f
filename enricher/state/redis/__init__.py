"""The state shared by many processes and hosts through a Redis server (`enricher[redis]`):
one connection (`connection`), one rate limiter (`limiter`), the answers (`answers`), the
daily budget and spent quota (`budget`) and the deferred lists (`deferred`) per API identity."""
