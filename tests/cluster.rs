//! Scale-out: two `callcoach` processes on loopback sharing one real PostgreSQL. A softphone
//! streams to node A; a supervisor's dashboard and the agent's overlay are connected to node B
//! and see the call; a whisper posted to node B reaches the agent on node A.

mod common;

use callcoach::auth::{Auth, Claims, Role};
use callcoach::client::call;
use callcoach::client::replay::{replay, Prepared, Protocol, ReplayOptions, TrackLayout};
use common::db::TestDb;
use futures_util::StreamExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "cluster-test-secret-0123456789";

struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_node(db_url: &str, dir: &std::path::Path, transcription: bool) -> Node {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callcoach"));
    cmd.args([
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--database-url",
        db_url,
    ])
    .env("CALLCOACH_JWT_SECRET", SECRET)
    .env("CALLCOACH_UPLOADS_DIR", dir.join(format!("uploads-{port}")))
    .env("RUST_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    if !transcription {
        cmd.arg("--no-transcription");
    }
    Node {
        child: cmd.spawn().expect("start callcoach"),
        port,
    }
}

async fn wait_ready(node: &Node) {
    let url = format!("http://127.0.0.1:{}/healthz", node.port);
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node on port {} did not come up", node.port);
}

fn token(sub: &str, role: Role) -> String {
    Auth::hs256(SECRET.as_bytes())
        .mint(&Claims::new(
            sub,
            "acme",
            role,
            Some("west"),
            Duration::from_secs(3600),
        ))
        .expect("mint")
}

/// Reads text messages from `ws` until one satisfies `pred` or `within` passes.
async fn wait_for<S>(
    ws: &mut S,
    within: Duration,
    mut pred: impl FnMut(&serde_json::Value) -> bool,
) -> Option<serde_json::Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = msg {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                if pred(&v) {
                    return Some(v);
                }
            }
        }
    }
    None
}

#[actix_web::test]
async fn dashboards_and_overlays_on_one_node_see_calls_on_another() {
    assert!(
        callcoach_models::default_model_path().is_file(),
        "run `callcoach models fetch` first"
    );
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let a = start_node(&db.url, dir.path(), true);
    let b = start_node(&db.url, dir.path(), false);
    wait_ready(&a).await;
    wait_ready(&b).await;

    let sup = token("sup-1", Role::Supervisor);
    let (mut live, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/v1/live?token={sup}", b.port))
            .await
            .expect("dashboard on node B");
    let agent = token("agent-1", Role::Agent);
    let (mut overlay, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{}/v1/agents/agent-1/hints?token={agent}",
        b.port
    ))
    .await
    .expect("overlay on node B");
    // Both sockets are subscribed once their first message (snapshot / detached) arrives.
    assert!(wait_for(&mut live, Duration::from_secs(10), |v| v["type"]
        == "snapshot")
    .await
    .is_some());
    assert!(
        wait_for(&mut overlay, Duration::from_secs(10), |v| v["type"]
            == "detached")
        .await
        .is_some()
    );

    let timeline = call::generate(&call::default_dir()).expect("generate call");
    let mut audio = callcoach::client::audio::load(&timeline.wav_path()).unwrap();
    audio.truncate_ms(20_000);
    let prepared = Prepared::new(&audio, Protocol::Native, TrackLayout::default()).unwrap();
    let mut opts = ReplayOptions::new(format!("ws://127.0.0.1:{}", a.port));
    opts.token = Some(agent.clone());
    opts.agent_id = Some("agent-1".into());
    let call_id = opts.call_id.clone();
    let softphone = tokio::spawn(async move { replay(&prepared, &opts, |_| {}).await });

    let started = wait_for(&mut live, Duration::from_secs(20), |v| {
        v["type"] == "call_started"
    })
    .await;
    assert_eq!(
        started.expect("node B's dashboard saw the call start")["call"]["call_id"],
        call_id.as_str()
    );
    let attached = wait_for(&mut overlay, Duration::from_secs(20), |v| {
        v["type"] == "attached"
    })
    .await;
    assert_eq!(
        attached.expect("overlay on node B attached")["call_id"],
        call_id.as_str()
    );

    // A whisper posted to node B is delivered by node A to the agent's overlay (on B).
    let resp = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/v1/calls/{call_id}/whisper",
            b.port
        ))
        .bearer_auth(&sup)
        .json(&serde_json::json!({"text": "Ask about their timeline"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "whisper forwarded");
    let whisper = wait_for(&mut overlay, Duration::from_secs(20), |v| {
        v["type"] == "hint" && v["kind"] == "whisper"
    })
    .await;
    assert_eq!(
        whisper.expect("whisper crossed nodes")["body"],
        "Ask about their timeline"
    );

    let fin = wait_for(&mut live, Duration::from_secs(60), |v| {
        v["type"] == "call_event" && v["event"]["type"] == "final"
    })
    .await;
    assert_eq!(
        fin.expect("a final crossed nodes")["call_id"],
        call_id.as_str()
    );
    let outcome = softphone.await.unwrap().expect("replay");
    assert!(outcome.events.iter().any(|e| e.kind() == "ended"));
    let ended = wait_for(&mut live, Duration::from_secs(30), |v| {
        v["type"] == "call_ended"
    })
    .await;
    assert!(ended.is_some(), "node B saw the call end");
    drop((a, b));
    db.cleanup().await;
}
