//! The softphone against a minimal WebSocket peer on 127.0.0.1 that records what arrives and
//! answers like the protocol says: these tests check the client's own wire output and timing.
//! (The client against the real server is in the root crate's integration tests.)

use super::*;
use base64::Engine;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// What the peer saw: each message with its arrival time since the first one, and the path.
#[derive(Debug, Default)]
struct Seen {
    path: String,
    auth: Option<String>,
    messages: Vec<(Duration, Message)>,
}

/// Two channels at 16 kHz: a 440 Hz tone on the left, a quieter 300 Hz on the right.
fn stereo(ms: u64) -> SourceAudio {
    let n = (ms * 16) as usize;
    let tone = |hz: f32, amp: f32| -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * hz * i as f32 / 16_000.0).sin())
            .collect()
    };
    SourceAudio::new(16_000, vec![tone(440.0, 0.5), tone(300.0, 0.1)]).unwrap()
}

/// Serves one connection, answering each message with `reply(message)`; a `Close` among the
/// answers ends the connection.
// The handshake callback's error type is tungstenite's `ErrorResponse`, not ours to shrink.
#[allow(clippy::result_large_err)]
async fn peer<R>(reply: R) -> (String, tokio::task::JoinHandle<Seen>)
where
    R: Fn(&Message) -> Vec<Message> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut seen = Seen::default();
        let mut path = String::new();
        let mut auth = None;
        let mut ws = tokio_tungstenite::accept_hdr_async(
            tcp,
            |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                path = req.uri().to_string();
                auth = req
                    .headers()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                Ok(resp)
            },
        )
        .await
        .unwrap();
        seen.path = path;
        seen.auth = auth;
        let first = Instant::now();
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            for out in reply(&msg) {
                let closing = out.is_close();
                ws.send(out).await.unwrap();
                if closing {
                    seen.messages.push((first.elapsed(), msg));
                    return seen;
                }
            }
            seen.messages.push((first.elapsed(), msg));
        }
        seen
    });
    (format!("ws://{addr}"), handle)
}

fn text_json(m: &Message) -> Option<Value> {
    match m {
        Message::Text(t) => serde_json::from_str(t).ok(),
        _ => None,
    }
}

#[tokio::test]
async fn native_stream_sends_start_frames_stop_and_collects_events() {
    let (url, server) = peer(|m| match text_json(m) {
        Some(v) if v["type"] == "start" => vec![Message::Text(
            r#"{"type":"ready","call_id":"c1","tracks":["agent","customer"],"sample_rate":16000}"#.into(),
        )],
        Some(v) if v["type"] == "stop" => vec![
            Message::Text(
                r#"{"type":"final","utterance_id":1,"track":"customer","revision":0,"text":"too expensive","start_ms":0,"end_ms":90}"#
                    .into(),
            ),
            Message::Text(r#"{"type":"ended","reason":"stop"}"#.into()),
        ],
        _ => vec![],
    })
    .await;
    let prepared = Prepared::new(
        &stereo(110),
        Protocol::Native,
        TrackLayout {
            agent_channel: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(prepared.frame_count(), 6); // 5 full frames + 10 ms
    let mut opts = ReplayOptions::new(url);
    opts.call_id = "c 1".into();
    opts.token = Some("tok.en".into());
    opts.lead_id = Some("L7".into());
    opts.agent_id = Some("A3".into());
    opts.realtime = false;
    let mut printed = Vec::new();
    let out = replay(&prepared, &opts, |e| printed.push(e.to_line()))
        .await
        .unwrap();
    let seen = server.await.unwrap();

    assert_eq!(seen.path, "/v1/calls/c%201/stream?token=tok.en");
    assert_eq!(seen.auth.as_deref(), Some("Bearer tok.en"));
    let start = text_json(&seen.messages[0].1).unwrap();
    assert_eq!(
        start,
        serde_json::json!({"type":"start","encoding":"pcm_s16le","sample_rate":16000,"channels":2,
            "tracks":["customer","agent"],"lead_id":"L7","agent_id":"A3"})
    );
    let frames: Vec<&Vec<u8>> = seen
        .messages
        .iter()
        .filter_map(|(_, m)| match m {
            Message::Binary(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(
        frames.iter().map(|f| f.len()).collect::<Vec<_>>(),
        vec![1280, 1280, 1280, 1280, 1280, 640]
    );
    // Interleaved s16le: the first sample pair is (left, right) = (0, 0); sample 1 of the left
    // channel (440 Hz at 0.5) is about 0.5 * sin(2π·440/16000) * 32767.
    let left1 = i16::from_le_bytes([frames[0][4], frames[0][5]]);
    assert!((2_800..=2_900).contains(&left1), "left sample 1 = {left1}");
    assert_eq!(
        text_json(&seen.messages.last().unwrap().1).unwrap()["type"],
        "stop"
    );

    assert_eq!(out.frames_sent, 6);
    assert!(out.stopped);
    assert_eq!(
        out.end,
        End::Ended {
            reason: "stop".into()
        }
    );
    let kinds: Vec<&str> = out.events.iter().map(TimedEvent::kind).collect();
    assert_eq!(kinds, ["ready", "final", "ended"]);
    assert!(
        out.events[0].t_ms <= 0,
        "ready arrives before the first frame"
    );
    assert!(
        matches!(out.call_events().nth(1), Some((_, CallEvent::Final(t))) if t.text == "too expensive")
    );
    assert!(printed[1].starts_with("{\"t_ms\":"), "{}", printed[1]);
    assert_eq!(printed.len(), 3);
}

#[tokio::test]
async fn twilio_stream_is_what_twilio_sends() {
    let (url, server) = peer(|_| vec![]).await;
    let audio = stereo(100);
    let prepared = Prepared::new(&audio, Protocol::Twilio, TrackLayout::default()).unwrap();
    let mut opts = ReplayOptions::new(url);
    opts.realtime = false;
    opts.token = Some("T".into());
    opts.agent_id = Some("A1".into());
    opts.drain_timeout = Duration::from_millis(300);
    let out = replay(&prepared, &opts, |_| {}).await.unwrap();
    let seen = server.await.unwrap();
    // The peer never answers `stop`: the client gives up after the drain timeout.
    assert_eq!(out.end, End::DrainTimeout);
    assert!(out.stopped);
    assert_eq!(seen.path, "/v1/twilio/stream");

    let msgs: Vec<Value> = seen
        .messages
        .iter()
        .map(|(_, m)| text_json(m).unwrap())
        .collect();
    assert_eq!(msgs[0]["event"], "connected");
    assert_eq!(msgs[1]["event"], "start");
    assert_eq!(
        msgs[1]["start"]["tracks"],
        serde_json::json!(["inbound", "outbound"])
    );
    assert_eq!(msgs[1]["start"]["customParameters"]["agent_id"], "A1");
    assert_eq!(msgs[1]["start"]["customParameters"]["token"], "T");
    let stream_sid = msgs[1]["streamSid"].as_str().unwrap();
    let media: Vec<&Value> = msgs.iter().filter(|m| m["event"] == "media").collect();
    assert_eq!(media.len(), 10, "5 steps × 2 tracks");
    // sequenceNumber counts every message after `connected`, as strings.
    for (k, m) in msgs[1..].iter().enumerate() {
        assert_eq!(m["sequenceNumber"], (k + 1).to_string());
        assert_eq!(m["streamSid"], stream_sid);
    }
    assert_eq!(msgs.last().unwrap()["event"], "stop");
    let b64 = base64::engine::general_purpose::STANDARD;
    for track in ["inbound", "outbound"] {
        let mine: Vec<&&Value> = media
            .iter()
            .filter(|m| m["media"]["track"] == track)
            .collect();
        assert_eq!(mine.len(), 5);
        for (k, m) in mine.iter().enumerate() {
            assert_eq!(m["media"]["chunk"], (k + 1).to_string());
            assert_eq!(m["media"]["timestamp"], (k as u64 * 20).to_string());
            assert_eq!(
                b64.decode(m["media"]["payload"].as_str().unwrap())
                    .unwrap()
                    .len(),
                160
            );
        }
        // outbound is the agent (channel 0, the loud tone), inbound the customer (quiet).
        let mut samples = Vec::new();
        for m in &mine {
            let bytes = b64.decode(m["media"]["payload"].as_str().unwrap()).unwrap();
            crate::actors::audio::mulaw::decode(&bytes, &mut samples);
        }
        let peak = samples[40..].iter().fold(0f32, |a, s| a.max(s.abs()));
        let want = if track == "outbound" { 0.5 } else { 0.1 };
        assert!((peak - want).abs() < want * 0.15, "{track} peak {peak}");
    }
}

#[tokio::test]
async fn realtime_pacing_holds_the_schedule_without_drift() {
    let (url, server) = peer(|_| vec![]).await;
    let prepared = Prepared::new(&stereo(1_000), Protocol::Native, TrackLayout::default()).unwrap();
    let mut opts = ReplayOptions::new(url);
    opts.drain_timeout = Duration::from_millis(200);
    // A peer that never sends `ready`: the native client does not stream into the void.
    opts.ready_timeout = Duration::from_millis(200);
    assert!(matches!(
        replay(&prepared, &opts, |_| {}).await,
        Err(ClientError::NoReady(_))
    ));
    drop(server);

    let (url, server) = peer(|m| match text_json(m) {
        Some(v) if v["type"] == "start" => vec![Message::Text(r#"{"type":"ready"}"#.into())],
        _ => vec![],
    })
    .await;
    opts.url = url;
    let started = Instant::now();
    let out = replay(&prepared, &opts, |_| {}).await.unwrap();
    let streamed = started.elapsed();
    let seen = server.await.unwrap();
    assert_eq!(out.frames_sent, 50);
    // 50 frames, the first due at 20 ms (once "captured"), the last at 1000 ms.
    let binary: Vec<Duration> = seen
        .messages
        .iter()
        .filter(|(_, m)| m.is_binary())
        .map(|(t, _)| *t)
        .collect();
    let span = binary[49] - binary[0];
    assert!(span >= Duration::from_millis(975), "50 frames in {span:?}");
    assert!(streamed >= Duration::from_millis(1_000));
}

#[tokio::test]
async fn a_server_that_refuses_ends_the_replay_with_its_error() {
    let (url, server) = peer(|m| match text_json(m) {
        Some(v) if v["type"] == "start" => vec![
            Message::Text(r#"{"type":"error","code":"bad_sample_rate","message":"no"}"#.into()),
            Message::Close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "bad_sample_rate".into(),
            })),
        ],
        _ => vec![],
    })
    .await;
    let prepared = Prepared::new(&stereo(100), Protocol::Native, TrackLayout::default()).unwrap();
    let out = replay(&prepared, &ReplayOptions::new(url), |_| {})
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(out.frames_sent, 0);
    // The error that came instead of `ready` is the reason (the close that follows is moot).
    assert_eq!(
        out.end,
        End::Refused {
            code: "bad_sample_rate".into(),
            message: "no".into()
        }
    );
    assert!(matches!(
        out.call_events().next(),
        Some((_, CallEvent::Error { .. }))
    ));
}

#[tokio::test]
async fn an_error_instead_of_ready_is_a_refusal_with_its_code() {
    // The server refuses but keeps the socket open: the client must not wait for `ready`.
    let (url, server) = peer(|m| match text_json(m) {
        Some(v) if v["type"] == "start" => vec![Message::Text(
            r#"{"type":"error","code":"too_many_calls","message":"at its limit"}"#.into(),
        )],
        _ => vec![],
    })
    .await;
    let prepared = Prepared::new(&stereo(100), Protocol::Native, TrackLayout::default()).unwrap();
    let started = Instant::now();
    let out = replay(&prepared, &ReplayOptions::new(url), |_| {})
        .await
        .unwrap();
    server.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.frames_sent, 0);
    assert_eq!(
        out.end,
        End::Refused {
            code: "too_many_calls".into(),
            message: "at its limit".into()
        }
    );
    assert_eq!(out.events.len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let prepared = Prepared::new(&stereo(40), Protocol::Native, TrackLayout::default()).unwrap();
    let r = replay(
        &prepared,
        &ReplayOptions::new(format!("ws://{addr}")),
        |_| {},
    )
    .await;
    assert!(matches!(r, Err(ClientError::Connect { .. })), "{r:?}");
}

#[test]
fn urls_follow_the_protocols() {
    let mut o = ReplayOptions::new("ws://127.0.0.1:9/");
    o.call_id = "abc".into();
    assert_eq!(
        stream_url(Protocol::Native, &o).unwrap(),
        "ws://127.0.0.1:9/v1/calls/abc/stream"
    );
    assert_eq!(
        stream_url(Protocol::Twilio, &o).unwrap(),
        "ws://127.0.0.1:9/v1/twilio/stream"
    );
    o.token = Some("a b".into());
    assert_eq!(
        stream_url(Protocol::Native, &o).unwrap(),
        "ws://127.0.0.1:9/v1/calls/abc/stream?token=a%20b"
    );
    // Twilio <Stream> URLs carry no query; the token travels in customParameters.
    assert_eq!(
        stream_url(Protocol::Twilio, &o).unwrap(),
        "ws://127.0.0.1:9/v1/twilio/stream"
    );
    o.url = "wss://h/custom?track=agent".into();
    assert_eq!(
        stream_url(Protocol::Native, &o).unwrap(),
        "wss://h/custom?track=agent&token=a%20b"
    );
    assert_eq!(
        overlay_url("ag/1", &o).unwrap(),
        "wss://h/v1/agents/ag%2F1/hints?token=a%20b"
    );
    for bad in ["http://h", "ws://", "h:80"] {
        o.url = bad.into();
        assert!(stream_url(Protocol::Native, &o).is_err(), "{bad}");
    }
}

#[test]
fn event_lines_put_arrival_time_first() {
    let e = TimedEvent {
        t_ms: -4,
        source: Source::Stream,
        json: serde_json::json!({"type":"ready"}),
    };
    assert_eq!(e.to_line(), r#"{"t_ms":-4,"type":"ready"}"#);
    let e = TimedEvent {
        t_ms: 9,
        source: Source::Overlay,
        json: serde_json::json!({}),
    };
    assert_eq!(e.to_line(), r#"{"t_ms":9,"source":"overlay"}"#);
    let e = TimedEvent {
        t_ms: 1,
        source: Source::Stream,
        json: serde_json::json!([1]),
    };
    assert_eq!(e.to_line(), r#"{"t_ms":1,"message":[1]}"#);
    let line: Value = serde_json::from_str(&e.to_line()).unwrap();
    assert_eq!(line["t_ms"], 1);
}

#[test]
fn mono_and_bad_layouts() {
    let mono = SourceAudio::new(8_000, vec![vec![0.1; 800]]).unwrap();
    let p = Prepared::new(
        &mono,
        Protocol::Native,
        TrackLayout {
            agent_channel: 0,
            mono_track: Track::Agent,
        },
    )
    .unwrap();
    assert_eq!(p.frame_count(), 5);
    assert!(
        matches!(&p.frames, Frames::Native { tracks, sample_rate: 8_000, .. } if tracks == &[Track::Agent])
    );
    let p = Prepared::new(
        &mono,
        Protocol::Twilio,
        TrackLayout {
            agent_channel: 0,
            mono_track: Track::Agent,
        },
    )
    .unwrap();
    assert!(
        matches!(&p.frames, Frames::Twilio { tracks } if tracks.len() == 1 && tracks[0].0 == TwilioTrack::Outbound)
    );
    let r = Prepared::new(
        &stereo(40),
        Protocol::Native,
        TrackLayout {
            agent_channel: 2,
            ..Default::default()
        },
    );
    assert!(matches!(
        r,
        Err(ClientError::NoSuchChannel {
            channel: 2,
            channels: 2
        })
    ));
    // 44.1 kHz is accepted as is; 96 kHz is outside the protocol and goes down to 16 kHz.
    let hi = SourceAudio::new(96_000, vec![vec![0.0; 9_600]]).unwrap();
    let p = Prepared::new(&hi, Protocol::Native, TrackLayout::default()).unwrap();
    assert!(
        matches!(&p.frames, Frames::Native { sample_rate: 16_000, frames, .. } if frames.len() == 5)
    );
}
