//! Converts a CTranslate2 Whisper directory to ggml without building the server:
//! `cargo run --release -p callcoach-models --example import_ct2 -- <ct2-dir> <out> [f16|q8_0]`
//! (used to time the import alone; `callcoach models import-ct2` is the user-facing command).

use callcoach_models::Quantization;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: import_ct2 <ct2-dir> <out> [f16|q8_0]".into());
    };
    let q: Quantization = args.next().as_deref().unwrap_or("f16").parse()?;
    let t = std::time::Instant::now();
    let s =
        callcoach_models::import_ct2(&PathBuf::from(dir), &PathBuf::from(&out), q, &mut |_, _| {})?;
    println!(
        "{out}: {} tensors, {} bytes, {:?}, {:.2} s",
        s.tensors,
        s.bytes,
        s.hparams,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
