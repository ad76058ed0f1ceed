//! Whisper's mel filter bank, computed rather than shipped.
//!
//! OpenAI's `mel_filters.npz` is `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`: the
//! Slaney mel scale (linear below 1 kHz, logarithmic above) and Slaney area normalisation
//! (each triangle scaled by `2 / (f_hi - f_lo)`). whisper.cpp reads the bank from the model
//! header as `n_mels × (n_fft/2 + 1)` f32, row-major by mel band.

/// Hz → mel on the Slaney scale (librosa `hz_to_mel(htk=False)`).
pub fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = (6.4f64).ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / logstep
    } else {
        hz / F_SP
    }
}

/// Mel → Hz on the Slaney scale (librosa `mel_to_hz(htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = (6.4f64).ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// The `n_mels × (n_fft/2 + 1)` Slaney-normalised filter bank from 0 Hz to Nyquist.
pub fn slaney_filters(sample_rate: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let nyquist = f64::from(sample_rate) / 2.0;
    // librosa: fftfreqs = linspace(0, sr/2, 1 + n_fft/2)
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|k| nyquist * k as f64 / (n_bins - 1) as f64)
        .collect();
    // n_mels + 2 points evenly spaced in mel between fmin = 0 and fmax = sr/2.
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_lo + (mel_hi - mel_lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, centre, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - lo) / (centre - lo);
            let upper = (hi - f) / (hi - centre);
            let w = lower.min(upper).max(0.0);
            out[m * n_bins + k] = (w * enorm) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips_and_is_linear_below_1khz() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 2500.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
    }

    /// Values printed by `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)` (the formula
    /// OpenAI used for `mel_filters.npz`), computed with numpy in float64 then cast to f32.
    #[test]
    fn matches_reference_values() {
        let f = slaney_filters(16000, 400, 80);
        assert_eq!(f.len(), 80 * 201);
        for &(m, k, want) in REFERENCE {
            let got = f[m * 201 + k];
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "filter {m} bin {k}: got {got}, want {want}"
            );
        }
    }

    #[test]
    fn every_band_is_a_single_nonnegative_triangle() {
        let f = slaney_filters(16000, 400, 80);
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|&w| w >= 0.0));
            let nz: Vec<usize> = (0..201).filter(|&k| row[k] > 0.0).collect();
            assert!(!nz.is_empty(), "band {m} is empty");
            // contiguous support
            assert_eq!(
                nz.last().unwrap() - nz[0] + 1,
                nz.len(),
                "band {m} has a gap"
            );
        }
    }

    include!("mel_reference.rs");
}
