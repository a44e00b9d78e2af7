from django.contrib.auth.management import create_permissions
from django.db import migrations

# Registry admins manage webhooks and see their deliveries in the admin site.
WEBHOOK_PERMISSIONS = (
    "view_webhook",
    "add_webhook",
    "change_webhook",
    "delete_webhook",
    "view_delivery",
)


def grant(apps, schema_editor):
    webhooks = apps.get_app_config("webhooks")
    webhooks.models_module = True
    create_permissions(webhooks, apps=apps, verbosity=0)
    webhooks.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="registry-admin")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="webhooks", codename__in=WEBHOOK_PERMISSIONS
        )
    )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name="registry-admin"):
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="webhooks", codename__in=WEBHOOK_PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_webhooks"),
        ("registry", "0003_groups"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
