"""API tokens stored as hashes. The tokens of DRF's authtoken table (keys in clear) move here as their
SHA-256, so existing clients keep working, and are deleted from it."""
import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models




def move_clear_tokens(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("pmrelease", "ApiToken")
    for token in Token.objects.all():
        ApiToken.objects.create(user_id=token.user_id, name="from authtoken_token", prefix=token.key[:8],
                                key_hash=hashlib.sha256(token.key.encode()).hexdigest(), created_at=token.created)
    Token.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('authtoken', '0004_alter_tokenproxy_options'),
        ('pmrelease', '0003_auditevent_keyed_chain'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, max_length=100)),
                ('prefix', models.CharField(help_text='the first characters of the key, to recognise it', max_length=8)),
                ('key_hash', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created_at'],
            },
        ),
        migrations.RunPython(move_clear_tokens, migrations.RunPython.noop),
    ]
