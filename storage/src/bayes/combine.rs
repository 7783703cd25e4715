//! The classifier's arithmetic, sans-IO: Robinson's probability of one
//! token from its counts, and Fisher's chi-square combining of the most
//! decisive tokens into the probability that a message is spam — the
//! method of SpamBayes and of SpamAssassin's Bayes.
//!
//! A token seen in `s` of `S` spam and `h` of `H` ham messages has Graham's
//! probability `p = (s/S) / (s/S + h/H)`, which Robinson pulls towards
//! [`PRIOR`] the less the token was seen (`n = s + h` times):
//! `f = (STRENGTH·PRIOR + n·p) / (STRENGTH + n)`. Tokens whose `f` lies
//! within [`MIN_DISTANCE`] of [`PRIOR`] say nothing and are left out, and
//! only the [`MAX_CLUES`] farthest count. Of those, the spam evidence
//! `S' = 1 − C⁻¹(−2 Σ ln(1 − f), 2n)` and the ham evidence
//! `H' = 1 − C⁻¹(−2 Σ ln f, 2n)` give `(1 + S' − H') / 2`: near 1 for spam,
//! near 0 for ham, and near 0.5 when the evidence is weak or split.

/// Robinson's `s`: how strongly a rarely seen token is pulled towards
/// [`PRIOR`].
pub const STRENGTH: f64 = 0.45;
/// Robinson's `x`: what a token says before it was ever seen.
pub const PRIOR: f64 = 0.5;
/// Tokens closer than this to [`PRIOR`] are no evidence.
pub const MIN_DISTANCE: f64 = 0.1;
/// The most tokens combined: the farthest from [`PRIOR`].
pub const MAX_CLUES: usize = 150;

/// The probability that a message holding a token is spam, from the
/// token's counts in the trained `spam_messages` and `ham_messages`.
pub fn token_probability(spam: u32, ham: u32, spam_messages: u32, ham_messages: u32) -> f64 {
    let n = f64::from(spam) + f64::from(ham);
    if n == 0.0 || spam_messages == 0 || ham_messages == 0 {
        return PRIOR;
    }
    let spam_ratio = (f64::from(spam) / f64::from(spam_messages)).min(1.0);
    let ham_ratio = (f64::from(ham) / f64::from(ham_messages)).min(1.0);
    let graham = spam_ratio / (spam_ratio + ham_ratio);
    (STRENGTH * PRIOR + n * graham) / (STRENGTH + n)
}

/// The chi-square survival function: the probability that a chi-square
/// variable of `degrees` (even) degrees of freedom is at least `x2`.
/// Summed in logarithms, so that large arguments neither overflow nor
/// turn into NaN.
pub fn chi2q(x2: f64, degrees: u32) -> f64 {
    let m = x2 / 2.0;
    if m.is_nan() || m <= 0.0 {
        return 1.0;
    }
    if m.is_infinite() {
        return 0.0;
    }
    let mut ln_term = -m;
    let mut sum = ln_term.exp();
    for i in 1..degrees / 2 {
        ln_term += (m / f64::from(i)).ln();
        sum += ln_term.exp();
    }
    sum.min(1.0)
}

fn distance(p: f64) -> f64 {
    (p - PRIOR).abs()
}

/// The probability that a message is spam from its tokens' probabilities
/// (see the module's description); [`PRIOR`] when none is evidence.
pub fn combine(probabilities: impl IntoIterator<Item = f64>) -> f64 {
    let mut clues: Vec<f64> = probabilities
        .into_iter()
        .filter(|p| p.is_finite() && distance(*p) >= MIN_DISTANCE)
        // Never 0 or 1: a logarithm of either would be infinite.
        .map(|p| p.clamp(1e-9, 1.0 - 1e-9))
        .collect();
    if clues.len() > MAX_CLUES {
        clues.select_nth_unstable_by(MAX_CLUES, |a, b| distance(*b).total_cmp(&distance(*a)));
        clues.truncate(MAX_CLUES);
    }
    if clues.is_empty() {
        return PRIOR;
    }
    let degrees = 2 * clues.len() as u32;
    let ln_ham: f64 = clues.iter().map(|p| p.ln()).sum();
    let ln_spam: f64 = clues.iter().map(|p| (1.0 - p).ln()).sum();
    let spam = 1.0 - chi2q(-2.0 * ln_spam, degrees);
    let ham = 1.0 - chi2q(-2.0 * ln_ham, degrees);
    ((1.0 + spam - ham) / 2.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn chi2q_matches_its_closed_forms() {
        // Two degrees: e^(-x/2); four: e^(-x/2)(1 + x/2).
        assert!(close(chi2q(2.0, 2), (-1.0f64).exp()));
        assert!(close(chi2q(4.0, 4), (-2.0f64).exp() * 3.0));
        assert_eq!(chi2q(0.0, 10), 1.0);
        assert_eq!(chi2q(f64::NAN, 10), 1.0);
        // Huge arguments: tiny, never NaN.
        let tail = chi2q(1e6, 300);
        assert!((0.0..1e-100).contains(&tail), "{tail}");
        assert_eq!(chi2q(f64::INFINITY, 300), 0.0);
    }

    #[test]
    fn token_probabilities_follow_the_counts() {
        assert_eq!(token_probability(0, 0, 20, 20), PRIOR);
        assert_eq!(token_probability(3, 0, 0, 20), PRIOR);
        // Seen once in spam only: Robinson's pull keeps it below 1.
        let once = token_probability(1, 0, 20, 20);
        assert!(close(once, (STRENGTH * PRIOR + 1.0) / (STRENGTH + 1.0)));
        let often = token_probability(15, 0, 20, 20);
        assert!(often > once && often < 1.0);
        // Symmetric, and normalized by the totals.
        assert!(close(token_probability(0, 15, 20, 20), 1.0 - often));
        assert!(close(token_probability(5, 10, 10, 20), PRIOR));
    }

    #[test]
    fn combining_agrees_with_clear_evidence_and_stays_neutral_without() {
        assert_eq!(combine([]), PRIOR);
        assert_eq!(combine([0.55, 0.45, 0.5]), PRIOR, "no evidence");
        let spam = combine(vec![0.99; 20]);
        let ham = combine(vec![0.01; 20]);
        assert!(spam > 0.99, "{spam}");
        assert!(ham < 0.01, "{ham}");
        assert!(close(
            combine(vec![0.99; 20]),
            1.0 - combine(vec![0.01; 20])
        ));
        let split = combine([0.99, 0.01, 0.98, 0.02]);
        assert!(close(split, 0.5), "{split}");
        // More evidence, more certainty.
        assert!(combine(vec![0.8; 30]) > combine(vec![0.8; 3]));
        // Degenerate inputs stay in range.
        let odd = combine([0.0, 1.0, f64::NAN, f64::INFINITY]);
        assert!((0.0..=1.0).contains(&odd), "{odd}");
    }

    #[test]
    fn only_the_most_decisive_clues_count() {
        // 150 strong spam clues outweigh any number of weak ham ones.
        let mut probabilities = vec![0.99; MAX_CLUES];
        probabilities.extend(vec![0.35; 1000]);
        assert!(combine(probabilities) > 0.99);
    }
}
