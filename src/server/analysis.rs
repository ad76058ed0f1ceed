//! Post-call analysis of uploaded recordings: the same pipeline as a live call, run offline.
//!
//! `POST /v1/uploads` stores the file and queues its job id; this runner takes ids one at a
//! time, decodes the file (symphonia, mixed to mono 16 kHz), feeds it to a [`CallActor`] exactly
//! as a softphone would (so endpointing, transcription, sentiment, coaching and scoring are the
//! live code), records the rows like a live call's (origin `upload`) and advances the job's
//! progress. It is not published on the live dashboards: it is not live.
//!
//! The transcription pool is shared with live calls, which must not wait behind a recording:
//! the runner feeds audio only while the pool has no finals queued, so an upload fills the gaps
//! between live utterances and never loses its own finals to the pool's Busy answer.

use crate::actors::audio::pcm::Encoding;
use crate::actors::call::{
    AttachSource, Audio, CallActor, CallObserver, CallSpec, DetachSource, SourceId,
};
use crate::actors::{CallEvent, Track};
use crate::hub::CallRows;
use crate::server::AppState;
use crate::store::calls::CallStart;
use crate::store::types::{JobStatus, Timestamp};
use crate::store::writer::CallRecord;
use actix::Actor;
use actix_web::web;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Audio per message to the call actor: one second, so progress moves smoothly and the actor's
/// handlers stay well under a millisecond.
const CHUNK_SECONDS: usize = 1;
/// How long the runner waits before looking at the pool again while live finals are queued.
const YIELD_TO_LIVE: Duration = Duration::from_millis(100);
/// A recording whose analysis is not done in this long is failed (a wedged pool, not a slow one:
/// an hour of audio takes ~10 minutes on the reference box).
const JOB_DEADLINE: Duration = Duration::from_secs(3600);

/// Runs upload jobs from `queue` until the server stops.
pub fn spawn_runner(state: web::Data<AppState>, mut queue: mpsc::Receiver<String>) {
    actix_web::rt::spawn(async move {
        while let Some(job_id) = queue.recv().await {
            let outcome = tokio::time::timeout(JOB_DEADLINE, run_job(&state, &job_id)).await;
            let error = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("analysis did not finish within its deadline".to_owned()),
            };
            if let Some(error) = error {
                tracing::warn!(job_id, error, "upload analysis failed");
                let _ = state
                    .store
                    .update_upload(&job_id, JobStatus::Failed, 0.0, None, Some(&error))
                    .await;
            }
        }
    });
}

/// Records the call's rows and tells the runner when it has ended.
struct UploadObserver {
    rows: Option<CallRows>,
    ended: parking_lot::Mutex<Option<oneshot::Sender<()>>>,
}

impl CallObserver for UploadObserver {
    fn on_event(&self, call: &CallSpec, event: &CallEvent) {
        if let Some(rows) = &self.rows {
            rows.on_event(call, event);
        }
        if let CallEvent::Ended { .. } = event {
            if let Some(tx) = self.ended.lock().take() {
                let _ = tx.send(());
            }
        }
    }
}

async fn run_job(state: &AppState, job_id: &str) -> Result<(), String> {
    let store = &state.store;
    let job = store
        .upload_by_id(job_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "job vanished (lead erased?)".to_owned())?;
    store
        .update_upload(job_id, JobStatus::Running, 0.0, None, None)
        .await
        .map_err(|e| e.to_string())?;
    let path = job.path.clone();
    let audio = tokio::task::spawn_blocking(move || crate::actors::audio::file::decode_file(path))
        .await
        .map_err(|e| format!("decoder task failed: {e}"))?
        .map_err(|e| format!("cannot decode the recording: {e}"))?;

    let call_id = format!("upload-{job_id}");
    let spec = CallSpec {
        call_id: call_id.clone(),
        tenant: job.tenant_id.clone(),
        agent_id: job.created_by.clone(),
        lead_id: job.lead_id.clone(),
        team: job.team.clone(),
    };
    if let Some(recorder) = state.hub.recorder() {
        recorder.record(CallRecord::CallStarted(CallStart {
            tenant: spec.tenant.clone(),
            call_id: call_id.clone(),
            lead_id: spec.lead_id.clone(),
            agent_id: spec.agent_id.clone(),
            team: spec.team.clone(),
            origin: "upload",
            started_at: Timestamp::now(),
        }));
    }
    let (ended_tx, ended_rx) = oneshot::channel();
    let observer = Arc::new(UploadObserver {
        rows: state.hub.recorder().cloned().map(CallRows::new),
        ended: parking_lot::Mutex::new(Some(ended_tx)),
    });
    let mut pipeline = state.pipeline.clone();
    // Offline audio arrives far faster than real time: a pause's offer would be overtaken by
    // the endpoint within the same batch, so speculative decodes would only cost work.
    pipeline.segmenter.speculate_after_ms = 0;
    let call_spec = spec.clone();
    let addr = CallActor::create(move |_| CallActor::new(call_spec, pipeline, observer));
    let source = SourceId(
        state
            .next_source
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    );
    addr.send(AttachSource {
        source,
        encoding: Encoding::F32le,
        sample_rate: crate::actors::PIPELINE_SAMPLE_RATE,
        tracks: vec![Track::Mixed],
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;

    let chunk = crate::actors::PIPELINE_SAMPLE_RATE as usize * CHUNK_SECONDS;
    let total = audio.samples_16k_mono.len().max(1);
    for (i, samples) in audio.samples_16k_mono.chunks(chunk).enumerate() {
        if let Some(t) = &state.pipeline.transcriber {
            while t.backlog().queued_finals > 0 {
                tokio::time::sleep(YIELD_TO_LIVE).await;
            }
        }
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        // `send` (not `try_send`): offline, waiting for mailbox room is the right back-pressure.
        addr.send(Audio {
            source,
            bytes: bytes.into(),
        })
        .await
        .map_err(|e| e.to_string())?;
        if i % 10 == 9 {
            // Decoding is done; transcription of the tail still follows, so stop short of 1.
            let progress = 0.9 * ((i + 1) * chunk) as f64 / total as f64;
            let _ = store
                .update_upload(job_id, JobStatus::Running, progress, Some(&call_id), None)
                .await;
        }
    }
    addr.send(DetachSource { source })
        .await
        .map_err(|e| e.to_string())?;
    ended_rx
        .await
        .map_err(|_| "the analysis call stopped without ending".to_owned())?;
    store
        .update_upload(job_id, JobStatus::Done, 1.0, Some(&call_id), None)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        job_id,
        call_id,
        seconds = audio.duration_s,
        "upload analysed"
    );
    Ok(())
}
