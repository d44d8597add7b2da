"""Storage: SQLAlchemy models, engine set-up, repositories. The schema changes only by alembic."""
