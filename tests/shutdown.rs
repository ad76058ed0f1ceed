//! Graceful shutdown of a real `callcoach` process: SIGTERM mid-call turns `/readyz` unready,
//! refuses new calls, tells the softphone (`warning` `shutting_down`), finishes the in-flight
//! utterances, flushes their rows to the database and exits cleanly.

use callcoach::auth::{Auth, Claims, Role};
use callcoach::client::call;
use callcoach::client::replay::{replay, Prepared, Protocol, ReplayOptions, TrackLayout};
use std::process::{Command, Stdio};
use std::time::Duration;

const SECRET: &str = "shutdown-test-secret-0123456789";

#[actix_web::test]
async fn sigterm_drains_live_calls_and_flushes_their_rows() {
    assert!(
        callcoach_models::default_model_path().is_file(),
        "run `callcoach models fetch` first"
    );
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("cc.sqlite").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_callcoach"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db_url,
        ])
        .env("CALLCOACH_JWT_SECRET", SECRET)
        .env("CALLCOACH_UPLOADS_DIR", dir.path().join("uploads"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start callcoach");
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "server did not become ready");

    let token = Auth::hs256(SECRET.as_bytes())
        .mint(&Claims::new(
            "agent-1",
            "acme",
            Role::Agent,
            Some("west"),
            Duration::from_secs(600),
        ))
        .unwrap();
    let timeline = call::generate(&call::default_dir()).expect("generate call");
    let mut audio = callcoach::client::audio::load(&timeline.wav_path()).unwrap();
    audio.truncate_ms(40_000);
    let prepared = Prepared::new(&audio, Protocol::Native, TrackLayout::default()).unwrap();
    let mut opts = ReplayOptions::new(format!("ws://127.0.0.1:{port}"));
    opts.token = Some(token.clone());
    opts.agent_id = Some("agent-1".into());
    let call_id = opts.call_id.clone();
    let softphone = tokio::spawn(async move { replay(&prepared, &opts, |_| {}).await });

    // Twelve seconds in, mid-call: SIGTERM.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // Unready first, so a load balancer drains the node.
    let mut unready = false;
    for _ in 0..50 {
        match reqwest::get(format!("{base}/readyz")).await {
            Ok(r) if r.status().as_u16() == 503 => {
                unready = true;
                break;
            }
            Err(_) => break,
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(unready, "/readyz did not turn unready during the drain");
    // New calls are refused while draining.
    let mut late = ReplayOptions::new(format!("ws://127.0.0.1:{port}"));
    late.token = Some(token.clone());
    late.agent_id = Some("agent-1".into());
    let short = {
        let mut a = callcoach::client::audio::load(&timeline.wav_path()).unwrap();
        a.truncate_ms(1_000);
        Prepared::new(&a, Protocol::Native, TrackLayout::default()).unwrap()
    };
    if let Ok(outcome) = replay(&short, &late, |_| {}).await {
        assert!(
            outcome
                .events
                .iter()
                .any(|e| e.json["code"] == "shutting_down"),
            "a call started during the drain was not refused"
        );
    }

    let outcome = softphone.await.unwrap().expect("replay");
    let kinds: Vec<&str> = outcome.events.iter().map(|e| e.kind()).collect();
    assert!(
        outcome
            .events
            .iter()
            .any(|e| e.kind() == "warning" && e.json["code"] == "shutting_down"),
        "softphone was not told: {kinds:?}"
    );
    assert!(
        kinds.contains(&"ended"),
        "call did not end cleanly: {kinds:?}"
    );
    let finals: Vec<u64> = outcome
        .events
        .iter()
        .filter(|e| e.kind() == "final")
        .filter_map(|e| e.json["utterance_id"].as_u64())
        .collect();
    assert!(!finals.is_empty(), "no finals before or during the drain");

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "server exited with {status}");

    // Every final the softphone saw is in the database.
    let store = callcoach::store::Store::connect(&db_url).await.unwrap();
    let stored = store.call_utterances("acme", &call_id).await.unwrap();
    assert_eq!(
        stored.len(),
        finals.len(),
        "stored utterances differ from the finals sent"
    );
    let call = store
        .get_call("acme", &call_id)
        .await
        .unwrap()
        .expect("call row");
    assert!(call.ended_at.is_some(), "call end not recorded");
}
