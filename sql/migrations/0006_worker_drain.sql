-- Worker drain: an operator asks a worker (POST /workers/{id}/drain, `eve workers drain ID`) to
-- stop claiming; the worker reads the flag with its heartbeat, finishes what it runs and exits.
-- Registering again (a restart) clears it.
ALTER TABLE eve.workers ADD COLUMN drain_requested_at timestamptz;
