-- Named queries for tenants (#19): limits and budgets, self-service keys and members,
-- the audit log, per-org secrets. The API runs them as eve_api under RLS (0011's policies
-- admit an org's admins and operators to writes); workers read secrets as service_role.

-- name: org_current
-- An org as its members see it, with its limits and what it uses now: pending and
-- running requests, and the spend of the current month (UTC) against the budget.
SELECT o.id, o.name, o.slug, o.created_at,
       l.max_running, coalesce(l.max_running_by_type, '{}') AS max_running_by_type, l.max_pending,
       l.rate_per_minute, l.monthly_budget_usd, coalesce(l.platform_keys, true) AS platform_keys,
       coalesce(l.agent_limits, '{}') AS agent_limits,
       (SELECT count(*) FROM eve.orchestration_requests r WHERE r.org_id = o.id AND r.status = 'pending') AS pending,
       (SELECT count(*) FROM eve.orchestration_requests r
        WHERE r.org_id = o.id AND r.lease_expires_at IS NOT NULL AND r.status IN ('claimed', 'processing')) AS running,
       (SELECT coalesce(sum(s.cost_usd), 0) FROM eve.orchestration_results s
        WHERE s.org_id = o.id AND s.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
           AS month_spend_usd
FROM eve.organizations o
LEFT JOIN eve.org_limits l ON l.org_id = o.id
WHERE o.id = %(org_id)s;

-- name: orgs_usage
-- Every org the caller sees (operators: all), with the same figures (the console's queue panel).
SELECT o.id, o.slug, l.max_running, l.max_pending, l.monthly_budget_usd,
       coalesce(p.pending, 0) AS pending, coalesce(f.running, 0) AS running,
       coalesce(s.spend, 0) AS month_spend_usd
FROM eve.organizations o
LEFT JOIN eve.org_limits l ON l.org_id = o.id
LEFT JOIN (SELECT org_id, count(*) AS pending FROM eve.orchestration_requests
           WHERE status = 'pending' GROUP BY org_id) p ON p.org_id = o.id
LEFT JOIN (SELECT org_id, count(*) AS running FROM eve.orchestration_requests
           WHERE lease_expires_at IS NOT NULL AND status IN ('claimed', 'processing') GROUP BY org_id) f
       ON f.org_id = o.id
LEFT JOIN (SELECT org_id, sum(cost_usd) AS spend FROM eve.orchestration_results
           WHERE created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
           GROUP BY org_id) s ON s.org_id = o.id
ORDER BY o.slug;

-- name: org_limits_get
SELECT * FROM eve.org_limits WHERE org_id = %(org_id)s;

-- name: org_limits_upsert
-- Operators only (RLS: operators_write). Columns not given keep their value; an explicit
-- clear sets NULL (no limit).
INSERT INTO eve.org_limits AS l (org_id, max_running, max_running_by_type, max_pending, rate_per_minute,
                                 monthly_budget_usd, platform_keys, agent_limits, updated_by)
VALUES (%(org_id)s, %(max_running)s, coalesce(%(max_running_by_type)s, '{}'::jsonb), %(max_pending)s,
        %(rate_per_minute)s, %(monthly_budget_usd)s, coalesce(%(platform_keys)s, true),
        coalesce(%(agent_limits)s, '{}'::jsonb), eve.current_user_id())
ON CONFLICT (org_id) DO UPDATE SET
    max_running = CASE WHEN %(set_max_running)s THEN EXCLUDED.max_running ELSE l.max_running END,
    max_running_by_type = CASE WHEN %(max_running_by_type)s::jsonb IS NOT NULL
                               THEN EXCLUDED.max_running_by_type ELSE l.max_running_by_type END,
    max_pending = CASE WHEN %(set_max_pending)s THEN EXCLUDED.max_pending ELSE l.max_pending END,
    rate_per_minute = CASE WHEN %(set_rate_per_minute)s THEN EXCLUDED.rate_per_minute ELSE l.rate_per_minute END,
    monthly_budget_usd = CASE WHEN %(set_monthly_budget_usd)s THEN EXCLUDED.monthly_budget_usd
                              ELSE l.monthly_budget_usd END,
    platform_keys = coalesce(%(platform_keys)s, l.platform_keys),
    agent_limits = CASE WHEN %(set_agent_limits)s THEN EXCLUDED.agent_limits ELSE l.agent_limits END,
    updated_at = now(),
    updated_by = eve.current_user_id()
RETURNING *;

-- name: admit_lock
-- Admission of one org's new requests is serialised (only orgs that have limits), so
-- max_pending holds exactly under concurrent submissions.
SELECT pg_advisory_xact_lock(hashtextextended(%(org_id)s::text, 1911));

-- name: admit_pending
SELECT count(*) AS n FROM eve.orchestration_requests WHERE org_id = %(org_id)s AND status = 'pending';

-- name: admit_spend
SELECT coalesce(sum(cost_usd), 0) AS spend FROM eve.orchestration_results
WHERE org_id = %(org_id)s
  AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

-- name: admit_rate
-- One more request for this key in the current minute: returns the count in this window
-- and the seconds left in it.
INSERT INTO eve.api_key_rate AS k (key_id, org_id, window_start, n)
VALUES (%(key_id)s, %(org_id)s, date_trunc('minute', now()), 1)
ON CONFLICT (key_id) DO UPDATE
SET n = CASE WHEN k.window_start = EXCLUDED.window_start THEN k.n + 1 ELSE 1 END,
    window_start = EXCLUDED.window_start
RETURNING n, ceil(extract(epoch FROM (window_start + interval '1 minute' - now())))::integer AS retry_after;

-- name: org_by_slug_visible
SELECT id, slug, name FROM eve.organizations WHERE slug = %(slug)s;

-- name: is_org_admin
SELECT eve.is_org_admin(%(org_id)s) AS admin;

-- name: audit_insert
INSERT INTO eve.audit_log (org_id, actor_user_id, actor_email, action, target, data)
VALUES (%(org_id)s, eve.current_user_id(), (SELECT email FROM eve.users WHERE id = eve.current_user_id()),
        %(action)s, %(target)s, %(data)s);

-- name: audit_list
SELECT id, at, org_id, actor_user_id, actor_email, action, target, data
FROM eve.audit_log
WHERE org_id = %(org_id)s AND (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: keys_list
SELECT k.id, k.prefix, k.name, k.created_at, k.last_used_at, k.revoked_at, u.email AS user_email
FROM eve.api_keys k
LEFT JOIN eve.users u ON u.id = k.user_id
WHERE k.org_id = %(org_id)s
ORDER BY k.created_at DESC;

-- name: key_create
INSERT INTO eve.api_keys (org_id, user_id, name, prefix, secret_hash)
VALUES (%(org_id)s, %(user_id)s, %(name)s, %(prefix)s, %(secret_hash)s)
RETURNING id, prefix, name, created_at;

-- name: key_revoke
UPDATE eve.api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE org_id = %(org_id)s AND prefix = %(prefix)s
RETURNING id, prefix, name, revoked_at;

-- name: members_list
SELECT m.user_id, u.email, u.display_name, m.role, m.created_at
FROM eve.org_members m
JOIN eve.users u ON u.id = m.user_id
WHERE m.org_id = %(org_id)s
ORDER BY u.email;

-- name: member_get
SELECT m.user_id, u.email, u.display_name, m.role, m.created_at
FROM eve.org_members m
JOIN eve.users u ON u.id = m.user_id
WHERE m.org_id = %(org_id)s AND (u.email = lower(%(who)s) OR m.user_id::text = %(who)s);

-- name: member_user_ensure
SELECT eve.api_user_ensure(%(email)s, %(display_name)s) AS user_id;

-- name: member_add
INSERT INTO eve.org_members (org_id, user_id, role) VALUES (%(org_id)s, %(user_id)s, %(role)s)
ON CONFLICT (org_id, user_id) DO NOTHING
RETURNING user_id, role, created_at;

-- name: member_set_role
UPDATE eve.org_members SET role = %(role)s WHERE org_id = %(org_id)s AND user_id = %(user_id)s
RETURNING user_id, role;

-- name: member_remove
DELETE FROM eve.org_members WHERE org_id = %(org_id)s AND user_id = %(user_id)s RETURNING user_id;

-- name: member_revoke_keys
-- A removed member's keys for this org stop working with the membership.
UPDATE eve.api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE org_id = %(org_id)s AND user_id = %(user_id)s AND revoked_at IS NULL
RETURNING prefix;

-- name: admins_count
SELECT count(*) AS n FROM eve.org_members WHERE org_id = %(org_id)s AND role IN ('owner', 'admin');

-- name: secret_put
INSERT INTO eve.org_secrets AS s (org_id, name, ciphertext, updated_by)
VALUES (%(org_id)s, %(name)s, %(ciphertext)s, eve.current_user_id())
-- (no EXCLUDED.ciphertext: reading it would need SELECT on the column, which eve_api lacks)
ON CONFLICT (org_id, name) DO UPDATE
SET ciphertext = %(ciphertext)s, updated_at = now(), updated_by = eve.current_user_id()
RETURNING name, created_at, updated_at;

-- name: secrets_list
SELECT s.name, s.created_at, s.updated_at, u.email AS updated_by
FROM eve.org_secrets s
LEFT JOIN eve.users u ON u.id = s.updated_by
WHERE s.org_id = %(org_id)s
ORDER BY s.name;

-- name: secret_delete
DELETE FROM eve.org_secrets WHERE org_id = %(org_id)s AND name = %(name)s RETURNING name;

-- name: secrets_for_org
-- Workers (service_role): an org's ciphertexts, whether platform keys reach its agents, and
-- its own agent limits (#28; they narrow the worker's).
SELECT coalesce((SELECT platform_keys FROM eve.org_limits WHERE org_id = %(org_id)s), true) AS platform_keys,
       coalesce((SELECT agent_limits FROM eve.org_limits WHERE org_id = %(org_id)s), '{}') AS agent_limits,
       coalesce((SELECT jsonb_agg(jsonb_build_array(name, encode(ciphertext, 'escape')))
                 FROM eve.org_secrets WHERE org_id = %(org_id)s), '[]') AS secrets;

-- name: secrets_all_for_rotation
SELECT org_id, name, ciphertext FROM eve.org_secrets ORDER BY org_id, name FOR UPDATE;

-- name: secret_rewrap
UPDATE eve.org_secrets SET ciphertext = %(ciphertext)s WHERE org_id = %(org_id)s AND name = %(name)s;

-- name: is_operator
SELECT eve.is_operator() AS op;

-- name: is_owner_or_operator
SELECT eve.is_operator() OR EXISTS (SELECT 1 FROM eve.org_members
                                    WHERE org_id = %(org_id)s AND user_id = eve.current_user_id()
                                      AND role = 'owner') AS ok;

-- name: audit_insert_admin
-- `eve admin …` on the database host (service role): no API caller, so the actor is named.
INSERT INTO eve.audit_log (org_id, actor_user_id, actor_email, action, target, data)
VALUES (%(org_id)s, NULL, %(actor)s, %(action)s, %(target)s, %(data)s);
