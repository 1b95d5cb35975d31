"""ReleaseChange becomes ReleaseNoteItem (a line of the release notes, not a change request): a rename of the
model and its related name only, so no row is lost or copied."""
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("releases", "0003_deployment_rolled_back_automatically")]

    operations = [
        migrations.RenameModel("ReleaseChange", "ReleaseNoteItem"),
        migrations.AlterField(
            model_name="releasenoteitem", name="release",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="note_items",
                                    to="releases.release"),
        ),
    ]
