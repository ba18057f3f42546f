"""The command line and the nightly job around the pipeline."""
