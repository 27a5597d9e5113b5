"""api_keys: tell every API process when a key changes

Each API process keeps the principals of the keys it has authenticated
(escompte/access/key_cache.py) and forgets them all when this notification arrives: a
key revoked, deleted or emptied by TRUNCATE, by the API, the command line or plain SQL,
is refused by every process as soon as the change commits. A notification is sent at
commit only, and several in one transaction arrive as one.

Revision ID: g9a1k3ycach3
Revises: f8a1ia5e5b4k
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "g9a1k3ycach3"
down_revision: str | None = "f8a1ia5e5b4k"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "escompte_api_keys"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION escompte_api_keys_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER api_keys_changed_notify
        AFTER UPDATE OR DELETE OR TRUNCATE ON api_keys
        FOR EACH STATEMENT EXECUTE FUNCTION escompte_api_keys_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER api_keys_changed_notify ON api_keys")
    op.execute("DROP FUNCTION escompte_api_keys_changed()")
