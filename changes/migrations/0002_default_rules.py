"""The seed's approval workflow as the initial approval rules (changes.defaults)."""
from django.db import migrations


def seed(apps, schema_editor):
    from changes.defaults import install

    install(apps.get_model("auth", "Group"), apps.get_model("changes", "ApprovalRule"))


class Migration(migrations.Migration):
    dependencies = [("changes", "0001_change_management"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
