"""The registry's pages: browse (models and versions), provenance (a version, its downloads and
"Verify now") and audit (the trail and its chain)."""
