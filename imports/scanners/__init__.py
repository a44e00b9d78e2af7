"""What the scan stage runs over the downloaded files: checks that prove a file is what it claims
to be, and scanners that give a verdict on what a loader would run."""
