-- The tables of floor.sql and theirs.sql (pg-floor.sh makes them in a fresh server).
-- ts_session: tower-sessions-sqlx-store's PostgreSQL table (the axum-messages rows' store).
create table ts_session (id text primary key, data bytea not null, expiry_date timestamptz not null);
-- fs, fm: PostgresStore's sessions and messages tables, as `migrate` makes them.
create table fs (namespace text not null, session_key text not null, expires_at bigint not null,
                 retired_until bigint, primary key (namespace, session_key));
create table fm (seq bigint generated always as identity primary key, namespace text not null,
                 session_key text not null, view_id text not null, pos bigint,
                 message_id text not null, body text not null, lease text, lease_until bigint);
create index fm_context on fm (namespace, session_key, view_id);
