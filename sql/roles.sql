-- Login roles for least privilege (eve.roles), run with the migrator's DSN only. Not in
-- queries*.sql: DO blocks and REVOKE are utility statements that cannot be PREPAREd.

-- name: login_role_params
-- Role name, group and password travel as bound parameters into transaction-local
-- settings, so no statement text ever carries a password (pg_stat_activity, logs).
SELECT set_config('eve.login_role', %(role)s, true),
       set_config('eve.login_group', %(group)s, true),
       set_config('eve.login_password', %(password)s, true);

-- name: login_role_ensure
-- Create or reset the login role named by login_role_params: it can log in, is no
-- superuser, creates no databases or roles, bypasses no RLS, and is a member of its one
-- group role and of nothing else.
DO $$
DECLARE
    r text := current_setting('eve.login_role');
    g text := current_setting('eve.login_group');
    other text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
        EXECUTE format('CREATE ROLE %I LOGIN', r);
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS '
                   'INHERIT PASSWORD %L', r, current_setting('eve.login_password'));
    FOR other IN
        SELECT b.rolname FROM pg_auth_members m
        JOIN pg_roles b ON b.oid = m.roleid
        JOIN pg_roles u ON u.oid = m.member
        WHERE u.rolname = r AND b.rolname <> g
    LOOP
        EXECUTE format('REVOKE %I FROM %I', other, r);
    END LOOP;
    IF NOT pg_has_role(r, g, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', g, r);
    END IF;
END
$$;

-- name: login_role_clear
SELECT set_config('eve.login_password', '', true);

-- name: public_schema_no_create
-- PostgreSQL 15+ already denies CREATE on schema public to PUBLIC; older servers did not.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- name: group_roles_ensure
-- The two NOLOGIN group roles the schema grants to, as migration 0001 makes them: a restore
-- (eve.backup) into a fresh cluster needs them before the backup's GRANTs run.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eve_api') THEN
        CREATE ROLE eve_api NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
END $$;
