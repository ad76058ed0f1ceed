//! The server: shared state, the route table ([`build_app`]) and the run loop with graceful
//! shutdown. `main` and the integration tests build the same app from here.
//!
//! Start-up order: database (migrations), transcription pool (model load), long-lived actors
//! under the supervisor, then the HTTP listener. Shutdown order (SIGTERM/SIGINT): `/readyz` turns
//! unready, new calls are refused, live sockets are told (`warning` `shutting_down`) and their
//! calls finish in-flight utterances, the store writer flushes, then the process exits.

use crate::actors::call::Pipeline;
use crate::actors::supervisor::Services;
use crate::auth::Auth;
use crate::config::Config;
use crate::hub::Hub;
use crate::store::Store;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App, HttpResponse};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub mod analysis;
pub mod pages;
pub mod request_id;
pub mod whisper;

/// How long shutdown waits for live calls to finish their in-flight utterances before exiting.
/// Kubernetes' default termination grace is 30 s; 20 s leaves room for the writer flush.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(20);

/// How often transcripts past the retention window are purged: hourly keeps the window accurate
/// to the hour at the cost of one indexed delete.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Everything handlers share. Built once at start.
pub struct AppState {
    pub config: Arc<Config>,
    pub hub: Arc<Hub>,
    pub pipeline: Pipeline,
    pub store: Store,
    pub auth: Arc<Auth>,
    pub services: Services,
    pub uploads: crate::api::Uploads,
    /// REST rate limiters, built once so every worker counts against the same buckets.
    pub governors: crate::api::limits::Governors,
    /// The CRM webhook dispatcher, when one is configured.
    pub crm: Option<crate::crm::DispatcherHandle>,
    /// Source ids for sockets feeding calls (unique per node).
    pub next_source: AtomicU32,
    /// Flips to true when shutdown begins; sockets watch it.
    pub shutdown: watch::Sender<bool>,
    ready: AtomicBool,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        auth: Arc<Auth>,
        services: Services,
        hub: Arc<Hub>,
        uploads: crate::api::Uploads,
        crm: Option<crate::crm::DispatcherHandle>,
    ) -> Self {
        let pipeline = services.pipeline();
        let (shutdown, _) = watch::channel(false);
        let governors = crate::api::limits::Governors::new(&config.limits.api);
        AppState {
            governors,
            config,
            hub,
            pipeline,
            store,
            auth,
            services,
            uploads,
            crm,
            next_source: AtomicU32::new(1),
            shutdown,
            ready: AtomicBool::new(true),
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Begins shutdown: unready first so load balancers drain us, then tell every socket.
    pub fn begin_shutdown(&self) {
        self.ready.store(false, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
    }
}

/// The application: every route, shared by `main` and the tests.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let assets = state.config.assets_dir.clone();
    let store = web::Data::new(state.store.clone());
    let auth = web::Data::from(state.auth.clone());
    let uploads = web::Data::new(state.uploads.clone());
    App::new()
        .app_data(state.clone())
        .app_data(store)
        .app_data(auth)
        .app_data(uploads)
        .wrap(actix_web::middleware::from_fn(request_id::middleware))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route(
            "/v1/calls/{call_id}/stream",
            web::get().to(crate::ws::native::stream),
        )
        .route(
            "/v1/twilio/stream",
            web::get().to(crate::ws::twilio::stream),
        )
        .route(
            "/v1/agents/{agent_id}/hints",
            web::get().to(crate::ws::overlay::stream),
        )
        .route("/v1/live", web::get().to(crate::ws::live::stream))
        .route(
            "/v1/calls/{call_id}/whisper",
            web::post().to(whisper::whisper),
        )
        .configure(crate::api::routes_with(state.governors.clone()))
        .configure(|cfg| pages::configure(cfg, &assets))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "alive"}))
}

/// Ready when: not shutting down, the database answers, the model is loaded (or transcription is
/// deliberately off), and the pool is not saturated.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let db = state.store.ping().await.is_ok();
    let accepting = state.ready.load(Ordering::SeqCst);
    let (model, saturated) = match &state.pipeline.transcriber {
        Some(t) => {
            let b = t.backlog();
            (
                true,
                b.queued_finals >= state.config.whisper.queue_capacity.get(),
            )
        }
        None => (!state.config.whisper.enabled, false),
    };
    let ready = db && accepting && model && !saturated;
    let body = serde_json::json!({
        "ready": ready,
        "accepting_calls": accepting,
        "database": db,
        "model_loaded": model,
        "pool_saturated": saturated,
        "live_calls": state.hub.live_calls(),
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::actors::metrics::render())
}

/// Builds the state from a validated config: database, model, actors.
pub async fn build_state(config: Config) -> anyhow::Result<web::Data<AppState>> {
    let config = Arc::new(config);
    let store = Store::connect(&config.database_url).await?;
    let auth = Arc::new(Auth::from_config(&config.jwt)?);
    let writer = crate::store::writer::StoreWriter::start(store.clone());
    let sink = Arc::new(crate::hub::StoreScoreSink(crate::hub::Recorder(
        writer.clone(),
    )));
    let services = crate::actors::supervisor::start(&services_config(&config, sink))?;
    let hub = Hub::new(Some(writer));
    if config.database_url.starts_with("postgres") {
        let cluster = crate::cluster::Cluster::join(&config.database_url, hub.clone()).await?;
        hub.set_cluster(cluster);
    }
    let (uploads, upload_queue) = crate::api::Uploads::new(
        &config.uploads_dir,
        crate::api::uploads::DEFAULT_MAX_UPLOAD_BYTES,
    )?;
    let crm = crate::crm::start(store.clone(), &config.crm)?;
    crate::store::erase::spawn_retention(store.clone(), config.retention, RETENTION_EVERY);
    let state = web::Data::new(AppState::new(
        config, store, auth, services, hub, uploads, crm,
    ));
    analysis::spawn_runner(state.clone(), upload_queue);
    Ok(state)
}

/// What the supervisor needs from the config to start the long-lived actors.
fn services_config(
    config: &Config,
    score_sink: Arc<dyn crate::actors::scorer::ScoreSink>,
) -> crate::actors::supervisor::ServicesConfig {
    let w = &config.whisper;
    crate::actors::supervisor::ServicesConfig {
        transcription: w.enabled.then(|| {
            let mut t = crate::actors::transcriber::TranscriberConfig::new(
                w.model
                    .clone()
                    .unwrap_or_else(callcoach_models::default_model_path),
            );
            t.workers = w.workers;
            t.threads_per_worker = w.threads;
            t.queue_capacity = w.queue_capacity;
            t.allow_fault_injection = w.allow_fault_injection;
            t.flash_attn = w.flash_attn;
            t
        }),
        playbook: config.playbook.clone(),
        segmenter: crate::actors::segmenter::SegmenterConfig {
            endpoint_silence_ms: config.segmenter.endpoint_silence.as_millis() as u64,
            speculate_after_ms: config.segmenter.speculate_after.as_millis() as u64,
            max_utterance_ms: config.segmenter.max_utterance.as_millis() as u64,
            partial_interval_ms: config.segmenter.partial_interval.as_millis() as u64,
            ..Default::default()
        },
        max_call: config.limits.max_call,
        score_sink,
    }
}

/// Runs the server until SIGTERM/SIGINT, then drains.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = config.addr;
    let state = build_state(config).await?;
    let app_state = state.clone();
    let server = actix_web::HttpServer::new(move || build_app(app_state.clone()))
        .bind(addr)?
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_DRAIN.as_secs())
        .run();
    tracing::info!(%addr, "callcoach listening");
    let handle = server.handle();
    let drain_state = state.clone();
    actix_web::rt::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: draining live calls");
        drain(&drain_state).await;
        handle.stop(true).await;
    });
    server.await?;
    if let Some(writer) = state.hub.store_writer() {
        writer.shutdown().await;
    }
    tracing::info!("callcoach stopped");
    Ok(())
}

/// Ends every live call (flushing in-flight utterances) and waits up to [`SHUTDOWN_DRAIN`].
pub async fn drain(state: &AppState) {
    state.begin_shutdown();
    for call in state.hub.snapshot() {
        if let Some(addr) = state.hub.call_addr(&call.call_id) {
            let _ = addr
                .send(crate::actors::call::EndCall {
                    reason: "server shutting down".into(),
                })
                .await;
        }
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN;
    while state.hub.live_calls() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            // Without signal handlers we can only wait for Ctrl-C.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
