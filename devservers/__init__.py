"""Servers for development, tests and the bench: never imported by the running product.

- `devservers.hub_double`: a local HTTP double of the Hugging Face Hub (`HubDouble`, `demo_repos`).
- `devservers.openbao`: a real OpenBao server (`start_openbao`, `start_persistent_openbao`).
- `devservers.seaweedfs`: a real S3 server, SeaweedFS `weed mini` (`start_seaweedfs`).
- `devservers.tools`: command-line tools found on PATH or in the virtualenv (`find_tool`).

`make run` (aegis_catalog/devstack.py), bench/ and the pytest fixtures in tests/fixtures/ start
them from here, so no code outside tests/ imports the tests.
"""
