"""What outlives a run: answers, the request budget, deferred IOCs, resuming."""
