//! `tower-sessions-sqlx-store` 0.15's `PostgresStore` and `SqliteStore` (MIT, Max
//! Countryman), ported to sqlx 0.9: the session stores behind the axum-messages peers of
//! our SQL rows.
//!
//! The crate itself cannot be built in this workspace. It depends on sqlx 0.8, whose
//! SQLite driver links `libsqlite3-sys` 0.28–0.30, while sqlx 0.9 (our stores) and
//! rusqlite 0.37 (a test dependency) link 0.35; Cargo allows one package that links
//! `sqlite3` in a dependency graph, and refuses the graph even with only the crate's
//! `postgres` feature on (the resolver counts sqlx 0.8's optional SQLite driver; sqlx
//! issue #3369 reports the same with its `chrono` feature).
//! So its two stores are ported here, doing what they do: the same SQL text, formatted on
//! every call as there; the same binds (the expiry as a `time::OffsetDateTime`); the same
//! MessagePack encoding of the whole record (`rmp-serde`); the same transaction around a
//! `create`; a pooled connection per call. Only what sqlx 0.9 changed differs (a statement
//! built at run time is passed as `AssertSqlSafe`), and what the harness does not call is
//! left out (`with_table_name`, `ExpiredDeletion`, MySQL, `migrate`'s allowance for a
//! `create schema` racing another process's).

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::{
    AssertSqlSafe, Database, Encode, FromRow, IntoArguments, PgConnection, PgPool, Pool,
    SqliteConnection, SqlitePool, Type,
};
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

#[allow(clippy::needless_pass_by_value)] // the argument of `map_err`
fn backend(e: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

/// A value both stores bind.
trait Bindable<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> + Send + 'static {}

impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB> + Send + 'static> Bindable<DB> for T {}

/// `query` with the record's id, encoded record and expiry bound, as both stores' writes
/// bind them.
fn bind_record<DB: Database>(
    query: String,
    record: &Record,
) -> session_store::Result<Query<'static, DB, DB::Arguments>>
where
    String: Bindable<DB>,
    Vec<u8>: Bindable<DB>,
    OffsetDateTime: Bindable<DB>,
{
    Ok(sqlx::query(AssertSqlSafe(query))
        .bind(record.id.to_string())
        .bind(encode(record)?)
        .bind(record.expiry_date))
}

/// Both stores' `load`: `query` selects the record's data by id and a time before its
/// expiry.
async fn load<DB: Database>(
    pool: &Pool<DB>,
    query: String,
    session_id: &Id,
) -> session_store::Result<Option<Record>>
where
    String: Bindable<DB>,
    OffsetDateTime: Bindable<DB>,
    (Vec<u8>,): for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    let data: Option<(Vec<u8>,)> = sqlx::query_as(AssertSqlSafe(query))
        .bind(session_id.to_string())
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(pool)
        .await
        .map_err(backend)?;
    data.map(|(data,)| rmp_serde::from_slice::<Record>(&data))
        .transpose()
        .map_err(|e| session_store::Error::Decode(e.to_string()))
}

/// Both stores' `delete`: `query` deletes by id.
async fn delete<DB: Database>(
    pool: &Pool<DB>,
    query: String,
    session_id: &Id,
) -> session_store::Result<()>
where
    String: Bindable<DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    sqlx::query(AssertSqlSafe(query))
        .bind(session_id.to_string())
        .execute(pool)
        .await
        .map_err(backend)?;
    Ok(())
}

/// `tower_sessions_sqlx_store::PostgresStore`: table `"tower_sessions"."session"`.
#[derive(Debug, Clone)]
pub struct PgSessions {
    pool: PgPool,
    schema_name: String,
    table_name: String,
}

impl PgSessions {
    /// A store on `pool`, with the crate's default schema and table names.
    pub fn new(pool: PgPool) -> PgSessions {
        PgSessions {
            pool,
            schema_name: "tower_sessions".to_owned(),
            table_name: "session".to_owned(),
        }
    }

    /// Creates the schema and the table if they are missing.
    pub async fn migrate(&self) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        let create_schema_query = format!(
            r#"create schema if not exists "{schema_name}""#,
            schema_name = self.schema_name,
        );
        sqlx::query(AssertSqlSafe(create_schema_query))
            .execute(&mut *tx)
            .await?;
        let create_table_query = format!(
            r#"
            create table if not exists "{schema_name}"."{table_name}"
            (
                id text primary key not null,
                data bytea not null,
                expiry_date timestamptz not null
            )
            "#,
            schema_name = self.schema_name,
            table_name = self.table_name
        );
        sqlx::query(AssertSqlSafe(create_table_query))
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    async fn id_exists(&self, conn: &mut PgConnection, id: &Id) -> session_store::Result<bool> {
        let query = format!(
            r#"
            select exists(select 1 from "{schema_name}"."{table_name}" where id = $1)
            "#,
            schema_name = self.schema_name,
            table_name = self.table_name
        );
        sqlx::query_scalar(AssertSqlSafe(query))
            .bind(id.to_string())
            .fetch_one(conn)
            .await
            .map_err(backend)
    }

    async fn save_with_conn(
        &self,
        conn: &mut PgConnection,
        record: &Record,
    ) -> session_store::Result<()> {
        let query = format!(
            r#"
            insert into "{schema_name}"."{table_name}" (id, data, expiry_date)
            values ($1, $2, $3)
            on conflict (id) do update
            set
              data = excluded.data,
              expiry_date = excluded.expiry_date
            "#,
            schema_name = self.schema_name,
            table_name = self.table_name
        );
        bind_record(query, record)?
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for PgSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        while self.id_exists(&mut tx, &record.id).await? {
            record.id = Id::default();
        }
        self.save_with_conn(&mut tx, record).await?;
        tx.commit().await.map_err(backend)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        self.save_with_conn(&mut conn, record).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let query = format!(
            r#"
            select data from "{schema_name}"."{table_name}"
            where id = $1 and expiry_date > $2
            "#,
            schema_name = self.schema_name,
            table_name = self.table_name
        );
        load(&self.pool, query, session_id).await
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let query = format!(
            r#"delete from "{schema_name}"."{table_name}" where id = $1"#,
            schema_name = self.schema_name,
            table_name = self.table_name
        );
        delete(&self.pool, query, session_id).await
    }
}

/// `tower_sessions_sqlx_store::SqliteStore`: table `tower_sessions`.
#[derive(Debug, Clone)]
pub struct SqliteSessions {
    pool: SqlitePool,
    table_name: String,
}

impl SqliteSessions {
    /// A store on `pool`, with the crate's default table name.
    pub fn new(pool: SqlitePool) -> SqliteSessions {
        SqliteSessions {
            pool,
            table_name: "tower_sessions".to_owned(),
        }
    }

    /// Creates the table if it is missing.
    pub async fn migrate(&self) -> sqlx::Result<()> {
        let query = format!(
            r"
            create table if not exists {}
            (
                id text primary key not null,
                data blob not null,
                expiry_date integer not null
            )
            ",
            self.table_name
        );
        sqlx::query(AssertSqlSafe(query))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Inserts `record`; `false` if its id is taken.
    async fn try_create_with_conn(
        &self,
        conn: &mut SqliteConnection,
        record: &Record,
    ) -> session_store::Result<bool> {
        let query = format!(
            r"
            insert or abort into {table_name}
              (id, data, expiry_date) values (?, ?, ?)
            ",
            table_name = self.table_name
        );
        let res = bind_record(query, record)?.execute(conn).await;
        match res {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn save_with_conn(
        &self,
        conn: &mut SqliteConnection,
        record: &Record,
    ) -> session_store::Result<()> {
        let query = format!(
            r"
            insert into {table_name}
              (id, data, expiry_date) values (?, ?, ?)
            on conflict(id) do update set
              data = excluded.data,
              expiry_date = excluded.expiry_date
            ",
            table_name = self.table_name
        );
        bind_record(query, record)?
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        while !self.try_create_with_conn(&mut tx, record).await? {
            record.id = Id::default();
        }
        tx.commit().await.map_err(backend)
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        self.save_with_conn(&mut conn, record).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let query = format!(
            r"
            select data from {}
            where id = ? and expiry_date > ?
            ",
            self.table_name
        );
        load(&self.pool, query, session_id).await
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let query = format!(
            r"
            delete from {} where id = ?
            ",
            self.table_name
        );
        delete(&self.pool, query, session_id).await
    }
}
