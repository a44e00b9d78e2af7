"""Browser tests: Chromium (the Debian package) driven by Playwright."""
