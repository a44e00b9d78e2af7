"""The four groups of Aegis and their model permissions.

Views check group membership themselves (``aegis_catalog.web.permissions.user_in_group``); the model
permissions below are what the Django admin site uses. ``registry-admin`` members also need
``is_staff`` to sign in to the admin site.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_PERMISSIONS = {
    "viewer": [
        "registry.view_registeredmodel",
        "registry.view_modelversion",
        "imports.view_importrequest",
        "imports.view_importevent",
    ],
    "importer": [
        "registry.view_registeredmodel",
        "registry.view_modelversion",
        "imports.view_importrequest",
        "imports.view_importevent",
        "imports.add_importrequest",
        "imports.change_importrequest",
    ],
    "auditor": [
        "registry.view_registeredmodel",
        "registry.view_modelversion",
        "registry.view_signingkey",
        "registry.view_issuedsignature",
        "imports.view_importrequest",
        "imports.view_importevent",
    ],
    "registry-admin": [
        "registry.view_registeredmodel",
        "registry.change_registeredmodel",
        "registry.view_modelversion",
        "registry.change_modelversion",
        "registry.view_signingkey",
        "registry.change_signingkey",
        "imports.view_importrequest",
        "imports.view_importevent",
    ],
}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = []
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.add(*wanted)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUP_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_audit_trail"),
        ("imports", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
