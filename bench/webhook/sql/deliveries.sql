-- Every delivery id the deployers recorded (queue/queue.go, queue/enqueue.go:
-- one row per app, provider and delivery id, naming the job it made or
-- joined). The same statement runs on SQLite and PostgreSQL.
SELECT app, provider, delivery_id, job_id
FROM queue_deliveries
