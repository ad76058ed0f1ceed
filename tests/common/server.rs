//! Starts the real server (same `build_app` as `main`) on 127.0.0.1:0 in its own thread with its
//! own actix system, against a fresh SQLite file in a temp dir.

use actix_web::dev::ServerHandle;
use actix_web::web;
use callcoach::auth::{Claims, Role};
use callcoach::config::Config;
use callcoach::server::{build_app, build_state, AppState};
use std::net::SocketAddr;
use std::time::Duration;

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: web::Data<AppState>,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

pub const TENANT: &str = "acme";
pub const TEAM: &str = "west";

impl TestServer {
    /// Starts a server with the test defaults, after `configure` has adjusted the config.
    pub fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = format!("sqlite://{}", dir.path().join("callcoach.sqlite").display());
        let mut config = Config::for_tests(&db);
        if config.whisper.enabled {
            let model = config
                .whisper
                .model
                .clone()
                .unwrap_or_else(callcoach_models::default_model_path);
            assert!(
                model.is_file(),
                "no Whisper model at {}: run `cargo run --release -- models fetch` first",
                model.display()
            );
        }
        config.uploads_dir = dir.path().join("uploads");
        configure(&mut config);
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            let started = tx.clone();
            let result = system.block_on(async move {
                let tx = started;
                let state = build_state(config).await?;
                let app_state = state.clone();
                let server = actix_web::HttpServer::new(move || build_app(app_state.clone()))
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .bind("127.0.0.1:0")?;
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send(Ok((addr, state, server.handle())))
                    .map_err(|_| anyhow::anyhow!("test gone"))?;
                server.await?;
                anyhow::Ok(())
            });
            if let Err(e) = result {
                let _ = tx.send(Err(e.to_string()));
            }
        });
        let (addr, state, handle) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not start in 60 s")
            .expect("server failed to start");
        TestServer {
            addr,
            state,
            handle,
            thread: Some(thread),
            dir,
        }
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// A token for `sub` in the test tenant and team.
    pub fn token(&self, sub: &str, role: Role) -> String {
        self.token_in(sub, role, TENANT, Some(TEAM))
    }

    pub fn token_in(&self, sub: &str, role: Role, tenant: &str, team: Option<&str>) -> String {
        let claims = Claims::new(sub, tenant, role, team, Duration::from_secs(3600));
        self.state.auth.mint(&claims).expect("mint token")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Tests run inside a runtime, which cannot block: stop the server from a plain thread.
        let handle = self.handle.clone();
        let stopper = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(handle.stop(false));
            }
        });
        let _ = stopper.join();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
