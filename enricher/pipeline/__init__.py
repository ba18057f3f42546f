"""The pipeline: normalize, dedupe, batch, send, resolve, and the run that joins them."""
