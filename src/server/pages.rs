//! The dashboard and overlay pages, served by the server itself from `assets/` (no CDN: the
//! machines these run on may have no internet).
//!
//! `/` is the supervisor dashboard, `/overlay` the agent overlay; their scripts and styles live
//! under `/dashboard/`, `/overlay/` and `/shared/`.

use actix_files::{Files, NamedFile};
use actix_web::{web, HttpRequest, HttpResponse};
use std::path::{Path, PathBuf};

pub fn configure(cfg: &mut web::ServiceConfig, assets: &Path) {
    let dashboard = assets.join("dashboard");
    let overlay = assets.join("overlay");
    let dashboard_index = dashboard.join("index.html");
    let overlay_index = overlay.join("index.html");
    cfg.route(
        "/",
        web::get().to(move |req| page(req, dashboard_index.clone())),
    )
    .route(
        "/overlay",
        web::get().to(move |req| page(req, overlay_index.clone())),
    )
    .service(Files::new("/dashboard", dashboard))
    .service(Files::new("/overlay", overlay))
    .service(Files::new("/shared", assets.join("shared")));
}

async fn page(req: HttpRequest, path: PathBuf) -> HttpResponse {
    match NamedFile::open_async(&path).await {
        Ok(file) => file.into_response(&req),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "page missing");
            HttpResponse::NotFound().body("page not installed")
        }
    }
}
