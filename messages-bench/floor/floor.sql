-- The least any store keeping one row per message under read leases does for one flash
-- pair: the add refreshes the session's expiry and inserts the row (carrying the settle
-- of the previous read, as PostgresStore does); the read marks the row with a lease.
-- No cap, no expiry or retirement check, no de-duplication, no NOTIFY: a floor, not a
-- store (each client is one session).
with s as (insert into fs (namespace, session_key, expires_at) values ('msg', ('sess-' || :client_id), 1000000000000000) on conflict (namespace, session_key) do update set expires_at = excluded.expires_at),
     d as (delete from fm where namespace = 'msg' and session_key = ('sess-' || :client_id) and view_id = 'v' and lease is not null)
insert into fm (namespace, session_key, view_id, message_id, body) values ('msg', ('sess-' || :client_id), 'v', '0000000000000001c0ffee0123456789', '{"level":"success","text":"Settings saved for Ann."}');
update fm set lease = 'token', lease_until = 1000000000000000 where namespace = 'msg' and session_key = ('sess-' || :client_id) and view_id = 'v' and lease is null returning seq, message_id, body;
