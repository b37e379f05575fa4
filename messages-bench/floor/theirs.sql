-- One flash pair of axum-messages on tower-sessions-sqlx-store, as the database sees it:
-- the POST loads the session and saves it with the message, the GET loads it and saves it
-- without (the statements of the store's load and save; each client is one session).
select data from ts_session where id = ('sess-' || :client_id) and expiry_date > now();
insert into ts_session (id, data, expiry_date) values (('sess-' || :client_id), '\x82a46d657373616765739181a474657874b753657474696e677320736176656420666f7220416e6e2ea56c6576656cab73756363657373'::bytea, now() + interval '1 day') on conflict (id) do update set data = excluded.data, expiry_date = excluded.expiry_date;
select data from ts_session where id = ('sess-' || :client_id) and expiry_date > now();
insert into ts_session (id, data, expiry_date) values (('sess-' || :client_id), '\x81a86d6573736167657390'::bytea, now() + interval '1 day') on conflict (id) do update set data = excluded.data, expiry_date = excluded.expiry_date;
