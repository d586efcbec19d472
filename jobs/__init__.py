"""The Postgres-backed job queue and the plugin task scheduler.

Empty until the jobs issue; the queue's table (`plugin_server_jobs`) is already in the first
Postgres migration.
"""
