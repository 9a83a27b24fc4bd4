-- Every job (deployment) in the queue, oldest first, with its state and the
-- deployer that claimed it ('' before a claim). SQLite and PostgreSQL.
SELECT id, app, state, owner
FROM queue_jobs
ORDER BY queued_ms, seq
