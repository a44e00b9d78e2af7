"""What an import is asked to do, and the checks every request passes before a row is written.

The page, the API and ``hf_import`` all go through ``imports.actions.request_import``, which
calls ``validate_options``: a refusal names the field at fault.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError

from aegis_catalog.lib.hub import COMMIT_RE, HubError, validate_repo_id, validate_revision
from registry.models import ImportPolicy, name_validator, version_validator
from registry.policy import RULE_REQUIRE_COMMIT, PolicyViolation

MAX_PATTERNS = 100
SIGN_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class ImportRejected(Exception):
    """The import cannot be started as asked; the message says why, ``field`` which input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ImportOptions:
    repo_id: str
    model_name: str
    version: str
    revision: str = "main"
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    sign_key: str = ""
    upload_s3: bool = False
    s3_bucket: str = ""
    register: bool = True


def _check_policy_at_request(revision: str) -> None:
    """The policy rules a request can break before anything runs: answered at once."""
    rules = ImportPolicy.current().rules()
    if rules.require_commit and not COMMIT_RE.fullmatch(revision):
        raise ImportRejected(
            str(
                PolicyViolation(
                    RULE_REQUIRE_COMMIT,
                    f"{revision!r} is a branch or tag that can move: the import policy "
                    "requires the 40-character commit",
                )
            )
        )


def _validate_source(options: ImportOptions) -> tuple[str, str]:
    """The repo id and revision, checked by the Hub's own rules and the policy."""
    try:
        repo_id = validate_repo_id(options.repo_id)
    except HubError as error:
        raise ImportRejected(str(error), "repo_id") from None
    try:
        revision = validate_revision(options.revision or "main")
    except HubError as error:
        raise ImportRejected(str(error), "revision") from None
    _check_policy_at_request(revision)
    return repo_id, revision


def _validate_names(options: ImportOptions) -> None:
    for field, label, validator, value in (
        ("model_name", "model name", name_validator, options.model_name),
        ("version", "version", version_validator, options.version),
    ):
        try:
            validator(value)
        except ValidationError as error:
            raise ImportRejected(
                f"invalid {label} {value!r}: {' '.join(error.messages)}", field
            ) from None


def _validate_patterns(options: ImportOptions) -> None:
    patterns = [*options.include, *options.exclude]
    if len(patterns) > MAX_PATTERNS:
        raise ImportRejected(f"at most {MAX_PATTERNS} file patterns, not {len(patterns)}")
    for field, values in (("include", options.include), ("exclude", options.exclude)):
        for pattern in values:
            if not pattern.strip() or len(pattern) > 300 or _CONTROL_CHARACTERS.search(pattern):
                raise ImportRejected(f"invalid file pattern {pattern!r}", field)


def _validate_sign_key(options: ImportOptions) -> str:
    sign_key = options.sign_key or settings.AEGIS_SIGN_KEY
    if not SIGN_KEY_RE.fullmatch(sign_key):
        # The name becomes part of Vault API paths (transit/sign/<name>).
        raise ImportRejected(
            f"invalid signing key name {sign_key!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            "sign_key",
        )
    return sign_key


def _validate_bucket(options: ImportOptions) -> str:
    bucket = options.s3_bucket or (settings.AEGIS_S3_BUCKET or "")
    if not options.upload_s3:
        return ""
    if not bucket:
        raise ImportRejected(
            "upload to S3 needs a bucket: pass --s3-bucket or set AEGIS_S3_BUCKET", "upload_s3"
        )
    if not S3_BUCKET_RE.fullmatch(bucket):
        raise ImportRejected(
            f"invalid S3 bucket name {bucket!r}: use 3-63 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit",
            "s3_bucket",
        )
    return bucket


def validate_options(options: ImportOptions) -> ImportOptions:
    """The options checked and normalised, or ImportRejected naming the field at fault."""
    repo_id, revision = _validate_source(options)
    _validate_names(options)
    _validate_patterns(options)
    sign_key = _validate_sign_key(options)
    bucket = _validate_bucket(options)
    return ImportOptions(
        repo_id=repo_id,
        model_name=options.model_name,
        version=options.version,
        revision=revision,
        include=[p.strip() for p in options.include],
        exclude=[p.strip() for p in options.exclude],
        sign_key=sign_key,
        upload_s3=options.upload_s3,
        s3_bucket=bucket,
        register=options.register,
    )
