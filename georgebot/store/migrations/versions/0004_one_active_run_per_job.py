"""one active run per job: a unique index over the names of active runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:00:00

Two Georges on one database used to both create a new job's run. Where an older database
holds such twins, the newest stays active and the others end as Cancelled, with an event
saying why; then the database refuses a second active run of any job.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if context.is_offline_mode():  # a script has no rows to read: only `georgebot migrate` settles twins
        op.execute("-- 0004: twin active runs of a job are not settled here, so where a job has two the "
                   "index below fails: run `georgebot migrate` instead")
    else:
        _settle_twins()
    op.create_index("uq_job_runs_active_name", "job_runs", ["name"], unique=True,
                    sqlite_where=sa.text("active"), postgresql_where=sa.text("active"))


def _settle_twins() -> None:
    conn = op.get_bind()
    twins = conn.execute(sa.text(
        "SELECT r.id, r.name FROM job_runs r WHERE r.active AND EXISTS ("
        " SELECT 1 FROM job_runs n WHERE n.active AND n.name = r.name AND n.id > r.id)"
    )).all()
    now = datetime.now(UTC).replace(tzinfo=None)
    for run_id, name in twins:
        conn.execute(sa.text("UPDATE job_runs SET active = :no, status = 'Cancelled' WHERE id = :id"),
                     {"no": False, "id": run_id})
        conn.execute(sa.text(
            "INSERT INTO events (at, job_id, job, step, actor, from_status, to_status, reason, message)"
            " VALUES (:at, :id, :job, NULL, 'engine', NULL, 'Cancelled', 'DuplicateRun', :message)"),
            {"at": now, "id": run_id, "job": name,
             "message": "a second active run of this job, made by another George; the newer one goes on"})


def downgrade() -> None:
    op.drop_index("uq_job_runs_active_name", table_name="job_runs")
