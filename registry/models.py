"""The organisation's model registry: models, their signed versions, and the signing trust store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

from registry.policy import ImportRules

GENESIS_HASH = "0" * 64

# Registry names end up in storage keys and tarball member names: keep them boring.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
version_validator = RegexValidator(
    VERSION_PATTERN,
    "Use 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit.",
)


def default_version(commit: str, today: date) -> str:
    """A version name for an import of ``commit``: ``YYYYMMDD-<short commit>`` sorts by date
    and names the exact source."""
    return f"{today:%Y%m%d}-{commit[:7]}"


class GatedChoices(models.TextChoices):
    NO = "no", "not gated"
    AUTO = "auto", "gated (automatic approval)"
    MANUAL = "manual", "gated (manual approval)"


class RegisteredModel(models.Model):
    """A model in the registry; its card metadata is kept as real, filterable fields."""

    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    source_repo = models.CharField(max_length=200, help_text="Hub repo id of the latest import")
    author = models.CharField(max_length=100, blank=True, db_index=True)
    license = models.CharField(max_length=100, blank=True, db_index=True)
    pipeline_tag = models.CharField(max_length=100, blank=True, db_index=True)
    library_name = models.CharField(max_length=100, blank=True, db_index=True)
    base_model = models.CharField(max_length=300, blank=True)
    tags = models.JSONField(default=list, blank=True)
    datasets = models.JSONField(default=list, blank=True)
    languages = models.JSONField(default=list, blank=True)
    gated = models.CharField(max_length=10, choices=GatedChoices.choices, default=GatedChoices.NO)
    card_data = models.JSONField(default=dict, blank=True, help_text="raw YAML card metadata")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("registry:model", args=[self.name])


class SigningKey(models.Model):
    """One version of a Vault Transit signing key, as read from Vault: the trust store.

    Rows are never deleted: artifacts signed before a key rotation, or before the OpenBao dev
    server forgot its keys, still verify offline from here. A version Vault no longer lists
    (below ``min_decryption_version``) is marked revoked.
    """

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    algorithm = models.CharField(max_length=40)
    public_key_pem = models.TextField()
    fingerprint = models.CharField(max_length=64, db_index=True, help_text="sha256 of the PEM")
    vault_addr = models.CharField(max_length=300, blank=True)
    transit_mount = models.CharField(max_length=100, default="transit")
    vault_created_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["vault_addr", "transit_mount", "name", "version", "fingerprint"],
                name="signing_key_unique_version",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.fingerprint[:12]})"


class ModelVersion(models.Model):
    """One signed, stored artifact of a registered model, imported from a pinned Hub commit."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        DEPRECATED = "deprecated", "deprecated"
        YANKED = "yanked", "yanked"
        # Imports need approval (ImportPolicy.require_approval): signed and stored, not served
        # until a registry admin other than the requester approves (VersionApproval).
        AWAITING = "awaiting", "awaiting approval"
        REJECTED = "rejected", "rejected"

    # Never served nor offered as an import's result to link to.
    UNSERVED = (Status.YANKED, Status.AWAITING, Status.REJECTED)

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=64, validators=[version_validator])
    license = models.CharField(
        max_length=100, blank=True, db_index=True, help_text="from the card at the commit"
    )
    model_path = models.CharField(max_length=1024, help_text="file:// or s3:// URL of the tar.gz")
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.BigIntegerField()
    file_count = models.PositiveIntegerField()
    manifest = models.JSONField(help_text="files with size, sha256 and the Hub's digests")
    model_signature = models.JSONField(help_text="OpenSSF model-signing bundle (model.sig)")
    attestation = models.JSONField(help_text="signed in-toto SLSA provenance bundle")
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="+")
    source_repo = models.CharField(max_length=200)
    source_revision = models.CharField(max_length=200)
    source_commit = models.CharField(max_length=40)
    source_endpoint = models.CharField(max_length=300)
    import_options = models.JSONField(default=dict, blank=True)
    scan_results = models.JSONField(default=list, blank=True)
    imported_by = models.CharField(max_length=300)
    imported_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["model__name", "-imported_at"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="model_version_unique")
        ]
        indexes = [
            models.Index(fields=["source_repo", "source_commit"]),
            # The registry list's per-model latest version, last import and count.
            models.Index(fields=["model", "-imported_at"], name="version_model_latest_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} {self.version}"

    def get_absolute_url(self) -> str:
        return reverse("registry:version", args=[self.model.name, self.version])

    @property
    def attestation_path(self) -> str:
        return self.model_path + ".sigstore.json"


class UpstreamState(models.Model):
    """What the upstream watch last found in a registered model's Hub repo, compared with its
    newest version (the baseline): the changes since that version's commit (``diff``, as
    ``registry.upstream.diff.UpstreamDiff.to_json`` writes it), whether they need a person's
    attention, and the error of the last attempt when the Hub could not answer (an error never
    changes ``state`` or ``diff``)."""

    class State(models.TextChoices):
        IN_SYNC = "in_sync", "in sync"
        CHANGED = "changed", "changed upstream"
        GONE = "gone", "gone upstream"

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="upstream")
    state = models.CharField(max_length=10, choices=State.choices, default=State.IN_SYNC)
    needs_attention = models.BooleanField(default=False, db_index=True)
    baseline = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tracked_revision = models.CharField(max_length=200, blank=True)
    upstream_commit = models.CharField(max_length=40, blank=True)
    diff = models.JSONField(default=dict, blank=True, help_text="the changes since the baseline")
    checked_at = models.DateTimeField(null=True, blank=True, help_text="last successful check")
    changed_at = models.DateTimeField(null=True, blank=True, help_text="when the diff last moved")
    attempted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="why the last attempt could not check")
    check_requested_at = models.DateTimeField(null=True, blank=True)
    check_requested_by = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["model__name"]

    def __str__(self) -> str:
        return f"upstream of {self.model_id}: {self.state}"

    @property
    def check_pending(self) -> bool:
        """A "Check upstream now" asked for after the last attempt."""
        return self.check_requested_at is not None and (
            self.attempted_at is None or self.attempted_at < self.check_requested_at
        )


class Pull(models.Model):
    """Who pulled a version's files through the Hugging Face-compatible endpoint (``/hf/``) on
    one day: one row per version, puller and day, counted up as files are served (not one
    audit row per HTTP request)."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="pulls")
    actor = models.CharField(max_length=300, help_text="user name, or 'anonymous'")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    day = models.DateField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    files = models.PositiveIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "-last_at"]
        constraints = [
            models.UniqueConstraint(fields=["version", "actor", "day"], name="pull_unique_day")
        ]

    def __str__(self) -> str:
        return f"{self.actor} pulled {self.version} on {self.day}"


class VerificationRun(models.Model):
    """One "Verify now" of a version, run by a background job; its result shows on the
    provenance page (and each run is on the audit trail, as every verification is)."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        PASSED = "passed", "passed"
        FAILED = "failed", "failed"

    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="verification_runs"
    )
    requested_by = models.CharField(max_length=300)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    checks = models.JSONField(default=list, blank=True, help_text="[{name, detail}] that passed")
    failed_check = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"verification #{self.pk} of {self.version_id} ({self.state})"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Audit events are appended, never changed: bulk update and delete are refused."""

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("audit events cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("audit events cannot be deleted")


class AuditLogIsAppendOnly(Exception):
    pass


class AuditChainHeadQuerySet(models.QuerySet["AuditChainHead"]):
    """The head moves only through ``AuditChainHead.advance``; it is never deleted."""

    def update(self, **kwargs: Any) -> int:
        raise AuditLogIsAppendOnly("the audit chain head moves only as events are appended")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("the audit chain head cannot be deleted")


class AuditChainHead(models.Model):
    """The last link of the audit hash chain; locked while an event is appended, so
    concurrent writers append one after the other."""

    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    objects = AuditChainHeadQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"audit chain at #{self.last_sequence}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditLogIsAppendOnly("the audit chain head moves only as events are appended")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("the audit chain head cannot be deleted")

    def advance(self, event: AuditEvent) -> None:
        """Move the head to ``event``, which must be the next link after it."""
        if event.sequence != self.last_sequence + 1 or event.previous_hash != self.last_hash:
            raise AuditLogIsAppendOnly(
                f"event #{event.sequence} does not follow the chain head #{self.last_sequence}"
            )
        moved = (
            models.QuerySet(model=AuditChainHead)
            .filter(pk=self.pk, last_sequence=self.last_sequence, last_hash=self.last_hash)
            .update(last_sequence=event.sequence, last_hash=event.hash)
        )
        if moved != 1:
            raise AuditLogIsAppendOnly("the audit chain head moved under a locked append")
        self.last_sequence, self.last_hash = event.sequence, event.hash


class AuditEvent(models.Model):
    """Who did what to which object, when: append-only, hash-chained.

    ``hash`` is sha256 over the previous event's hash and this event's canonical content, so
    changing, removing or reordering any event breaks every later link
    (``manage.py verify_audit_chain`` names the first broken one).
    """

    sequence = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=300)
    # The id is part of the hashed content: deleting the user must leave it as it was.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=100)
    object_repr = models.CharField(max_length=300)
    model_name = models.CharField(max_length=100, blank=True)
    details = models.JSONField(default=dict, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        # Django's own machinery (delete cascades, related managers) uses the guarded manager.
        base_manager_name = "objects"
        ordering = ["-sequence"]
        indexes = [
            models.Index(fields=["actor", "-sequence"], name="audit_actor_idx"),
            models.Index(fields=["action", "-sequence"], name="audit_action_idx"),
            models.Index(fields=["model_name", "-sequence"], name="audit_model_idx"),
            models.Index(fields=["created_at", "sequence"], name="audit_time_idx"),
            models.Index(fields=["object_type", "object_id", "-sequence"], name="audit_object_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.object_repr} by {self.actor}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new instance given an existing pk would UPDATE that row: only inserts are allowed.
        if not self._state.adding or self.pk is not None:
            raise AuditLogIsAppendOnly("audit events cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("audit events cannot be deleted")

    def content(self) -> dict[str, Any]:
        """What the hash covers, besides the previous hash."""
        return {
            "sequence": self.sequence,
            "created_at": self.created_at.isoformat(),
            "actor": self.actor,
            "actor_user": self.actor_user_id,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "object_repr": self.object_repr,
            "model_name": self.model_name,
            "details": self.details,
        }

    def compute_hash(self) -> str:
        return chain_hash(self.previous_hash, self.content())


def chain_hash(previous_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous_hash}\n{canonical}".encode()).hexdigest()


def validate_spdx_ids(value: Any) -> None:
    """A list of SPDX license ids (the allow-list of the import policy)."""
    from django.core.exceptions import ValidationError

    from registry.policy import canonical_license_ids

    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Give a list of SPDX license ids.")
    try:
        canonical = canonical_license_ids(value)
    except ValueError as error:
        raise ValidationError(str(error)) from None
    if canonical != value:
        raise ValidationError(f"Write the SPDX ids as {', '.join(canonical)}.")


def _rule_answer(choices: Any, default: str, help_text: str) -> models.CharField[str, str]:
    """A policy rule answered block, warn or allow."""
    return models.CharField(max_length=8, choices=choices, default=default, help_text=help_text)


class ImportPolicy(models.Model):
    """The rules every import must follow; one row, edited by registry admins in the admin.

    ``current()`` returns it (created with the defaults on first use). Edits go through
    ``registry.actions.edit_import_policy``, which records each field's before and after.
    """

    class UnknownLicense(models.TextChoices):
        BLOCK = "block", "block the import"
        WARN = "warn", "import, with a warning"
        ALLOW = "allow", "import"

    class PicklePolicy(models.TextChoices):
        SAFETENSORS_ONLY = "safetensors_only", "safetensors only: no pickle-based files"
        BLOCK_DANGEROUS = "block_dangerous", "block dangerous pickles, warn on suspicious"
        WARN_ONLY = "warn_only", "warn on dangerous and suspicious pickles"

    allowed_licenses = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_spdx_ids],
        help_text="SPDX license ids an imported model may carry; empty: any license",
    )
    unknown_license = models.CharField(
        max_length=8,
        choices=UnknownLicense.choices,
        default=UnknownLicense.WARN,
        help_text="a card with no license, or one that is not an SPDX id (other, llama2, ...)",
    )
    pickle_policy = models.CharField(
        max_length=20, choices=PicklePolicy.choices, default=PicklePolicy.BLOCK_DANGEROUS
    )
    max_import_bytes = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="largest selection of files an import may download; empty: "
        "AEGIS_MAX_IMPORT_BYTES",
    )
    require_commit = models.BooleanField(
        default=False,
        help_text="imports must name a 40-character commit, not a branch or tag that can move",
    )
    require_approval = models.BooleanField(
        default=False,
        help_text="a version an import registers awaits approval by a registry admin other than "
        "its requester before it is served or downloadable",
    )
    # The rules about what the scan finds in the files: each answered block, warn or allow.
    remote_code = _rule_answer(
        UnknownLicense.choices,
        UnknownLicense.WARN,
        "repos with Python files or an auto_map in their configs: code that transformers runs "
        "when the model is loaded with trust_remote_code=True",
    )
    malformed_weights = _rule_answer(
        UnknownLicense.choices,
        UnknownLicense.WARN,
        "a .safetensors file whose header does not parse, or whose tensors' byte ranges leave "
        "the file, overlap or disagree with their dtype and shape",
    )
    template_injection = _rule_answer(
        UnknownLicense.choices,
        UnknownLicense.BLOCK,
        "a chat template (GGUF metadata, tokenizer_config.json) that reaches Python internals: "
        "dunder attributes, os, eval...",
    )
    keras_code = _rule_answer(
        UnknownLicense.choices,
        UnknownLicense.BLOCK,
        "a Keras model (.keras, .h5) whose config carries Python code: Lambda layers, "
        "serialised functions",
    )
    onnx_external_data = _rule_answer(
        UnknownLicense.choices,
        UnknownLicense.BLOCK,
        "an ONNX model whose external-data location leaves the model's directory (an absolute "
        "path, '..'): loading it reads that file",
    )
    onnx_custom_ops = _rule_answer(
        UnknownLicense.choices,
        UnknownLicense.WARN,
        "an ONNX model whose nodes use operator domains beyond the standard ones: running it "
        "needs a custom operator library",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "import policy"
        verbose_name_plural = "import policy"

    def __str__(self) -> str:
        return "import policy"

    @classmethod
    def current(cls) -> ImportPolicy:
        policy = cls.objects.filter(pk=1).first()
        if policy is None:
            policy, _ = cls.objects.get_or_create(
                pk=1, defaults={"unknown_license": settings.AEGIS_POLICY_UNKNOWN_LICENSE}
            )
        return policy

    def rules(self, overridden: Iterable[str] = ()) -> ImportRules:
        """The rules as ``registry.policy.ImportRules``, with the overridden rule ids."""

        return ImportRules(
            allowed_licenses=tuple(self.allowed_licenses or ()),
            unknown_license=self.unknown_license,
            pickle_policy=self.pickle_policy,
            max_import_bytes=self.max_import_bytes or settings.AEGIS_MAX_IMPORT_BYTES,
            require_commit=self.require_commit,
            remote_code=self.remote_code,
            malformed_weights=self.malformed_weights,
            template_injection=self.template_injection,
            keras_code=self.keras_code,
            onnx_external_data=self.onnx_external_data,
            onnx_custom_ops=self.onnx_custom_ops,
            overridden=frozenset(overridden),
        )


class PolicyOverride(models.Model):
    """A registry admin let one import past one policy rule, once, with a reason (audited)."""

    import_request = models.ForeignKey(
        "imports.ImportRequest", on_delete=models.CASCADE, related_name="policy_overrides"
    )
    rule = models.CharField(max_length=40)
    reason = models.TextField()
    blocked_because = models.TextField(blank=True, help_text="the import's error when granted")
    granted_by = models.CharField(max_length=300)
    granted_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["granted_at", "pk"]

    def __str__(self) -> str:
        return f"override of {self.rule} for import #{self.import_request_id} by {self.granted_by}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "reason": self.reason,
            "granted_by": self.granted_by,
            "granted_at": self.granted_at.isoformat() if self.granted_at else "",
        }


class VersionApproval(models.Model):
    """The approval a version awaits (ImportPolicy.require_approval) and its decision: who asked
    (the import's actor), who approved or rejected it, when and why."""

    class Decision(models.TextChoices):
        PENDING = "pending", "awaiting approval"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="approval")
    requested_by = models.CharField(max_length=300)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING)
    decided_by = models.CharField(max_length=300, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["requested_at", "pk"]

    def __str__(self) -> str:
        return f"approval of {self.version_id}: {self.decision}"
