//! Model evaluation: ROC AUC and a reproducible stratified held-out split.
//!
//! Kept here (no linear-algebra dependencies) so the numbers `callcoach scoring train` reports
//! are computed by code with its own unit tests, whatever library fits the weights.

/// Area under the ROC curve of `scores` against `labels` (true = positive): the probability
/// that a random positive scores above a random negative, ties counting one half
/// (Mann–Whitney U with mid-ranks). `None` when either class is empty, lengths differ, or a
/// score is NaN.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, mid-ranked) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mid_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let p = positives as f64;
    let u = rank_sum - p * (p + 1.0) / 2.0;
    Some(u / (p * negatives as f64))
}

/// A small deterministic generator (SplitMix64) so a seed gives the same split on every
/// platform and version, which `rand`'s generators do not promise.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection so there is no modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Splits row indices into (train, test), holding out `test_fraction` of each class so a rare
/// positive class (11 % in the UCI bank calls) is represented in both parts.
pub fn stratified_split(
    labels: &[bool],
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let frac = if test_fraction.is_finite() {
        test_fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let mut rng = SplitMix64::new(seed);
    let mut train = Vec::new();
    let mut test = Vec::new();
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        let n_test = (idx.len() as f64 * frac).round() as usize;
        test.extend_from_slice(&idx[..n_test]);
        train.extend_from_slice(&idx[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn perfect_inverted_and_chance_rankings() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &labels), Some(0.5));
    }

    #[test]
    fn hand_computed_example_with_a_tie() {
        // Positives 0.8, 0.4; negatives 0.4, 0.3, 0.1. Pairs won: 0.8 beats all 3; 0.4 beats
        // 0.3 and 0.1 and ties 0.4 (½): (3 + 2.5) / 6.
        let scores = [0.8, 0.4, 0.4, 0.3, 0.1];
        let labels = [true, true, false, false, false];
        let auc = roc_auc(&scores, &labels).unwrap();
        assert!((auc - 5.5 / 6.0).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn degenerate_inputs_have_no_auc() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(roc_auc(&[0.1], &[true, false]), None);
        assert_eq!(roc_auc(&[f64::NAN, 0.2], &[true, false]), None);
    }

    #[test]
    fn split_is_stratified_reproducible_and_a_partition() {
        let labels: Vec<bool> = (0..1000).map(|i| i % 10 == 0).collect();
        let (train, test) = stratified_split(&labels, 0.25, 7);
        assert_eq!(train.len() + test.len(), 1000);
        assert_eq!(test.iter().filter(|&&i| labels[i]).count(), 25);
        let mut all: Vec<usize> = train.iter().chain(test.iter()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(stratified_split(&labels, 0.25, 7), (train, test.clone()));
        assert_ne!(stratified_split(&labels, 0.25, 8).1, test);
    }

    proptest! {
        /// AUC equals the pairwise definition on arbitrary small inputs.
        #[test]
        fn auc_matches_pairwise_counting(data in prop::collection::vec((0u8..8, any::<bool>()), 2..60)) {
            let scores: Vec<f64> = data.iter().map(|(s, _)| f64::from(*s)).collect();
            let labels: Vec<bool> = data.iter().map(|(_, l)| *l).collect();
            let mut wins = 0.0;
            let mut pairs = 0.0;
            for (i, &li) in labels.iter().enumerate() {
                for (j, &lj) in labels.iter().enumerate() {
                    if li && !lj {
                        pairs += 1.0;
                        if scores[i] > scores[j] { wins += 1.0 } else if scores[i] == scores[j] { wins += 0.5 }
                    }
                }
            }
            let got = roc_auc(&scores, &labels);
            if pairs == 0.0 {
                prop_assert_eq!(got, None);
            } else {
                prop_assert!((got.unwrap() - wins / pairs).abs() < 1e-9);
            }
        }
    }
}
