//! Fresh databases for storage tests: a temporary SQLite file, or a new PostgreSQL database
//! created for the test and dropped after it (`CALLCOACH_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, names the server and an existing database to
//! connect through).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use callcoach::store::Store;
use sqlx::{Connection, Executor, PgConnection};

pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn pg_base_url() -> String {
    std::env::var("CALLCOACH_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// A store on a database that exists only for one test.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    /// `(admin url, database name)` for PostgreSQL.
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.sqlite").display());
        let store = Store::connect(&url).await.expect("open sqlite store");
        TestDb {
            store,
            url,
            pg: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = pg_base_url();
        let name = format!("cc_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required for this test: {e}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        conn.close().await.ok();
        let (base, _) = admin.rsplit_once('/').expect("database url has a path");
        let url = format!("{base}/{name}");
        let store = Store::connect(&url).await.expect("open postgres store");
        TestDb {
            store,
            url,
            pg: Some((admin, name)),
            _dir: None,
        }
    }

    /// The database name on PostgreSQL.
    pub fn pg_name(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, n)| n.as_str())
    }

    /// Runs `sql` on the PostgreSQL server through the admin connection (outage simulation).
    pub async fn pg_admin(&self, sql: &str) {
        let (admin, _) = self.pg.as_ref().expect("postgres test db");
        let mut conn = PgConnection::connect(admin)
            .await
            .expect("admin connection");
        conn.execute(sql).await.expect("admin statement");
        conn.close().await.ok();
    }

    /// Closes the store and drops the PostgreSQL database (the SQLite file goes with its dir).
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((admin, name)) = &self.pg {
            if let Ok(mut conn) = PgConnection::connect(admin).await {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
                conn.close().await.ok();
            }
        }
    }
}

/// Runs an async test body `fn(&Store)` against a fresh SQLite file and a fresh PostgreSQL
/// database, as two tests named `sqlite` and `postgres` in a module named after the body.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = $crate::db::TestDb::sqlite().await;
                super::$name(&db).await;
                db.cleanup().await;
            }
            #[tokio::test]
            async fn postgres() {
                let db = $crate::db::TestDb::postgres().await;
                super::$name(&db).await;
                db.cleanup().await;
            }
        }
    )*};
}
