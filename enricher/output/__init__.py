"""What a run writes: records, files, the manifest, the summary, progress."""
