"""The stages of one job, each resumable from what is already in the database."""
