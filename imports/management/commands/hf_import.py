"""``manage.py hf_import``: the web UI's import, from a terminal or a CI job."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from aegis_catalog.identity import ci_identity, os_identity
from aegis_catalog.lib.hub import HubError
from imports.actions import ImportOptions, ImportRejected, request_import
from imports.jobs import run_import
from imports.models import ImportRequest, Stage


class StageProgress:
    """One tqdm bar per stage that reports bytes."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm[Any] | None = None
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != self.stage or self.bar is None:
            self.close()
            self.stage = stage
            self.bar = tqdm(
                total=total or None,
                desc=f"{Stage(stage).label:<18}",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                leave=True,
            )
        self.bar.total = total or self.bar.total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Command(BaseCommand):
    help = "Import a Hugging Face Hub model: pin, download, check, scan, sign, store, register."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version is the registry version here, not Django's "print the version" flag.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repo-id", required=True, help="Hub repo, ORG/NAME")
        parser.add_argument("--model-name", required=True, help="name in the registry")
        parser.add_argument("--version", required=True, help="version in the registry")
        parser.add_argument("--revision", default="main", help="branch, tag or commit (main)")
        parser.add_argument("--include", nargs="+", action="extend", default=[], metavar="PATTERN")
        parser.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="PATTERN")
        parser.add_argument("--sign-key", default="", help="transit key (AEGIS_SIGN_KEY)")
        parser.add_argument("--upload-s3", action="store_true", help="store in S3, not locally")
        parser.add_argument("--s3-bucket", default="", help="bucket (AEGIS_S3_BUCKET)")
        parser.add_argument("--register", action="store_true", help="add it to the registry")
        parser.add_argument("--actor", default="", help="who to record (default: CI or OS user)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = options["actor"] or ci_identity() or os_identity()
        try:
            requested = request_import(
                ImportOptions(
                    repo_id=options["repo_id"],
                    model_name=options["model_name"],
                    version=options["version"],
                    revision=options["revision"],
                    include=options["include"],
                    exclude=options["exclude"],
                    sign_key=options["sign_key"],
                    upload_s3=options["upload_s3"],
                    s3_bucket=options["s3_bucket"],
                    register=options["register"],
                ),
                actor=actor,
                source=ImportRequest.Source.CLI,
                enqueue=False,
                interactive=False,
            )
        except (ImportRejected, HubError) as error:
            raise CommandError(str(error)) from None
        if requested.existing is not None:
            existing = requested.existing
            self.stdout.write(
                f"{existing.source_repo}@{requested.commit} with these file patterns is already "
                f"in the registry as {existing.model.name} {existing.version} "
                f"(sha256 {existing.sha256}); nothing was imported again"
            )
            return
        request = requested.request
        assert request is not None
        progress = StageProgress(enabled=not options["no_progress"])
        try:
            run_import(request.pk, on_progress=progress)
        finally:
            progress.close()
        request.refresh_from_db()
        if request.status != ImportRequest.Status.SUCCEEDED:
            stage = f" at stage {request.stage}" if request.stage else ""
            raise CommandError(f"import #{request.pk} {request.status}{stage}: {request.error}")
        result = request.result
        self.stdout.write(f"import #{request.pk} succeeded ({request.repo_id}@{request.commit})")
        self.stdout.write(f"artifact:    {result['artifact_url']}")
        self.stdout.write(f"attestation: {result['attestation_url']}")
        self.stdout.write(f"sha256:      {result['sha256']}")
        self.stdout.write(f"signed by:   {result['signing_key']} v{result['signing_key_version']}")
        version = request.model_version
        if version is not None:
            self.stdout.write(f"registered:  {version.model.name} {version.version}")
        if "linked_to" in result:
            self.stdout.write(
                f"note: this commit was already imported with the same options by import "
                f"#{result['linked_to']}; nothing was imported again"
            )
