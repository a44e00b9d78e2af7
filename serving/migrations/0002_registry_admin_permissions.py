from django.contrib.auth.management import create_permissions
from django.db import migrations

# Registry admins choose which model answers for a Hub repo id, and see what first pulls found.
SERVING_PERMISSIONS = (
    "view_hubrepochoice",
    "add_hubrepochoice",
    "change_hubrepochoice",
    "delete_hubrepochoice",
    "view_servedversion",
)


def grant(apps, schema_editor):
    serving = apps.get_app_config("serving")
    serving.models_module = True
    create_permissions(serving, apps=apps, verbosity=0)
    serving.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="registry-admin")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="serving", codename__in=SERVING_PERMISSIONS
        )
    )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name="registry-admin"):
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="serving", codename__in=SERVING_PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [("serving", "0001_initial"), ("registry", "0004_import_policy")]

    operations = [migrations.RunPython(grant, revoke)]
