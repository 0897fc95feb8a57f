"""Usage analytics: the refresh that writes the V12 rollups and the reads the pages make."""
