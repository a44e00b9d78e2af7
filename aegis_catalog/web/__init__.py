"""Web code every app's views share: access by group, error pages, query-string forms and paging.

The apps' views import from here, never from one another (tests/test_layering.py).
"""
