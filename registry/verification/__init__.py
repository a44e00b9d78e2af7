"""The parts of runtime verification; ``registry.verify`` is the public entry point.

``result``: the outcome and the error per check; ``fetch``: getting the tarball and the files
beside it, and extracting it; ``checks``: one function per check.
"""
