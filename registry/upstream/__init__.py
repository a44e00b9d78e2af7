"""The upstream watch: what changed in a registered model's Hub repo since its newest version
was imported (new commits on the tracked revision, files added, removed or changed by digest,
license, gated status, card fields, the repo gone or renamed).

- ``diff``: the comparison itself (no queries, no network) and the diff's JSON;
- ``fetch``: the Hub's answers for one repo, with bounded retries (a 429's ``Retry-After``);
- ``actions``: the state changes (``UpstreamState``, ``upstream.changed`` on the audit trail,
  "Check upstream now");
- ``watch``: one model's check, a pass over all of them (the job ``aegis_catalog.cron``
  queues every ``AEGIS_UPSTREAM_WATCH_SECONDS``, and ``manage.py watch_upstream``).
"""
