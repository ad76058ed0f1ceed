//! Persistence for tenants, users, leads, calls, transcripts, hints, score history, the CRM
//! outbox, the audit log and upload jobs, on SQLite (default: one file, WAL) or PostgreSQL.
//!
//! Both backends run the same SQL text through sqlx's `Any` driver: the schema keeps to types
//! both share (TEXT, 64-bit integers, doubles; timestamps as epoch milliseconds), placeholders
//! are `$1`-style (SQLite accepts them too), and upserts use `ON CONFLICT`, which both speak.
//! Each backend has its own migration directory (`migrations/sqlite`, `migrations/postgres`),
//! embedded in the binary and run by [`Store::connect`].
//!
//! Layout: [`types`] (column value types), one file per area with its `impl Store` block
//! ([`leads`], [`calls`], [`scores`], [`outbox`], [`audit`], [`keys`], [`uploads`]), [`erase`]
//! (erasure and retention) and [`writer`] (the batched writer that keeps live calls off the
//! database's latency).

pub mod audit;
pub mod calls;
pub mod erase;
pub mod keys;
pub mod leads;
pub mod outbox;
pub mod scores;
pub mod types;
pub mod uploads;
pub mod writer;

pub use audit::{AuditEntry, AuditRecord};
pub use calls::{Call, CallStart, HintRow, StoredUtterance};
pub use erase::{ErasureCounts, PurgeCounts};
pub use keys::{IngestKey, NewIngestKey};
pub use leads::{Lead, LeadPage, LeadPatch, LeadQuery, NewLead};
pub use outbox::OutboxRow;
pub use scores::{ScoreChange, ScoreEvent, ScoreRecorded};
pub use types::{now_ms, JobStatus, JsonText, Outcome, Role, Stage, Timestamp};
pub use uploads::{NewUpload, UploadJob};

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::AnyPool;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Duration;

/// Migrations for each backend, embedded at compile time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite allows one writer at a time; more connections only add readers, and WAL readers do
/// not block the writer. 8 covers the REST workers of a 4–8 core box without piling up
/// connections that wait on the same write lock.
const SQLITE_POOL_SIZE: u32 = 8;
/// PostgreSQL's default `max_connections` is 100; two or three nodes at 16 each leave room for
/// migrations, psql and monitoring.
const POSTGRES_POOL_SIZE: u32 = 16;
/// A request that cannot get a connection within 5 s is better answered with 503 than queued:
/// it is far above the 10 ms p95 target, so the database is down or saturated.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("unsupported database url `{0}` (expected sqlite: or postgres://)")]
    BadUrl(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid value: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("malformed json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_owned());
            }
        }
        StoreError::Database(e)
    }
}

impl StoreError {
    /// Whether retrying the same operation later may succeed (connection lost, database busy or
    /// restarting, pool exhausted), as opposed to an error in the data itself.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => is_transient_sqlx(e),
            StoreError::Io(_) => true,
            _ => false,
        }
    }
}

fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else { return false };
            let code = code.as_ref();
            // PostgreSQL SQLSTATEs: class 08 connection exception, 40001 serialization failure,
            // 40P01 deadlock, 53xxx insufficient resources, 57P01-03 shutdown / cannot connect now.
            if code.starts_with("08")
                || code.starts_with("53")
                || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
            {
                return true;
            }
            // SQLite (extended) result codes; the primary code is the low byte:
            // 5 BUSY, 6 LOCKED, 13 FULL (disk full: recovers when space is freed).
            code.parse::<i32>()
                .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 13))
        }
        _ => false,
    }
}

/// The database, shared by REST handlers, the writer task and the CRM dispatcher (cheap to
/// clone: a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens the database named by `url` and brings its schema up to date.
    ///
    /// `sqlite:PATH` / `sqlite://PATH` creates the file on first use and switches it to WAL;
    /// `postgres://…` connects to an existing database. Migrations run before this returns.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };

        let pool = match backend {
            Backend::Sqlite => {
                // Create the file and make it WAL once with the native driver: WAL is a
                // persistent property of the file, and switching needs an exclusive lock that
                // is best taken before any pool connection exists.
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal);
                let conn = opts.connect().await?;
                conn.close().await?;
                AnyPoolOptions::new()
                    .max_connections(SQLITE_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // NORMAL is durable in WAL mode except for the last transactions
                            // before a power cut (sqlite.org/pragma.html#pragma_synchronous);
                            // FULL would fsync on every commit of the writer's batches.
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_POOL_SIZE)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await?
            }
        };

        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests and tools that need a raw query.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// One round trip to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Registers a tenant (idempotent; the name of an existing tenant is kept).
    pub async fn upsert_tenant(&self, id: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Registers or updates a user of a tenant.
    pub async fn upsert_user(
        &self,
        tenant: &str,
        id: &str,
        name: &str,
        role: Role,
        team: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        ensure_tenant(&mut tx, tenant).await?;
        sqlx::query(
            "INSERT INTO users (tenant_id, id, name, role, team, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant_id, id) DO UPDATE
             SET name = excluded.name, role = excluded.role, team = excluded.team",
        )
        .bind(tenant)
        .bind(id)
        .bind(name)
        .bind(role.as_str())
        .bind(team)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rows in every table, by table name (the erasure test and operators' sanity checks).
    pub async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut out = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            // The table names are the constants below, never input.
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await?;
            out.push((table, n));
        }
        Ok(out)
    }
}

/// Every table the migrations create (minus sqlx's own bookkeeping).
pub const TABLES: [&str; 11] = [
    "tenants",
    "users",
    "ingest_keys",
    "leads",
    "calls",
    "utterances",
    "hints",
    "score_events",
    "outbox",
    "audit_log",
    "upload_jobs",
];

/// Tokens are signed by us, so a tenant named in a valid token exists: its row is created on
/// its first write rather than requiring a separate provisioning step.
pub(crate) async fn ensure_tenant(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tenants (id, name, created_at) VALUES ($1, $1, $2)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(tenant)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Who may be shown which rows within a tenant (built by `auth` from the caller's role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Everything in the tenant (admins).
    Tenant,
    /// Rows of one team (supervisors).
    Team(String),
    /// Rows owned by one user (agents: their leads, their calls).
    Owner(String),
}

/// A dynamically assembled statement: `$n` placeholders with the values to bind, in order.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub sql: String,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        SqlBuilder {
            sql: sql.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends `sql` with each `?` replaced by the next placeholder for the given args.
    pub fn push(&mut self, sql: &str, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        let mut args = args.into_iter();
        for ch in sql.chars() {
            if ch == '?' {
                if let Some(a) = args.next() {
                    self.args.push(a);
                    self.sql.push_str(&format!("${}", self.args.len()));
                    continue;
                }
            }
            self.sql.push(ch);
        }
        self
    }

    pub fn query_as<'q, T>(
        &'q self,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments<'q>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as::<_, T>(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` escaped (use `ESCAPE '\'`).
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for ch in needle.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Acme"), "%acme%");
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn builder_numbers_placeholders_in_order() {
        let mut b = SqlBuilder::new("SELECT 1 WHERE a = $1");
        b.args.push(Arg::Int(1));
        b.push(" AND b = ? AND c = ?", [Arg::Text("x".into()), Arg::Int(2)]);
        assert_eq!(b.sql, "SELECT 1 WHERE a = $1 AND b = $2 AND c = $3");
        assert_eq!(b.args.len(), 3);
    }

    #[tokio::test]
    async fn rejects_unknown_urls() {
        let err = Store::connect("mysql://x").await.unwrap_err();
        assert!(matches!(err, StoreError::BadUrl(_)));
    }
}
