"""``manage.py watch_upstream [NAME ...]``: one pass of the upstream watch, in the foreground."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.models import RegisteredModel
from registry.upstream.watch import watch_pass


class Command(BaseCommand):
    help = (
        "Compare every registered model (or the NAMEs given) with its Hub repo now, as the "
        "periodic job does: record what changed since the newest version's commit, and put "
        "changes on the audit trail (upstream.changed). Prints one line per model; exits 1 "
        "when a check could not be made."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="registered model names")
        parser.add_argument("--actor", default="", help="who asked (default: aegis)")

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["names"]
        unknown = sorted(set(names) - set(
            RegisteredModel.objects.filter(name__in=names).values_list("name", flat=True)
        ))  # fmt: skip
        if unknown:
            raise CommandError(f"no registered model named {', '.join(unknown)}")
        actor = options["actor"] or "aegis"
        results = watch_pass(names=names, actor=actor)
        for result in results:
            attention = " (needs attention)" if result.needs_attention else ""
            detail = f": {result.detail}" if result.detail else ""
            self.stdout.write(f"{result.model_name}: {result.outcome}{attention}{detail}")
        failed = [result.model_name for result in results if result.outcome == "error"]
        if failed:
            raise CommandError(f"the Hub could not be asked about {', '.join(failed)}")
        self.stdout.write(f"{len(results)} model(s) checked")
