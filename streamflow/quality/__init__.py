"""What the platform knows about its features, shown: monitoring, drift, the quality report."""
