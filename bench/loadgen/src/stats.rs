//! Latency summaries.

use serde_json::{json, Value};

/// p50/p90/p99/max (ms) and the count of a sample set; sorts it.
pub fn summary(samples: &mut [f32]) -> Value {
    if samples.is_empty() {
        return json!({"n": 0, "p50_ms": null, "p90_ms": null, "p99_ms": null, "max_ms": null});
    }
    samples.sort_unstable_by(f32::total_cmp);
    let q = |p: f64| {
        let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
        round3(samples[idx] as f64)
    };
    json!({
        "n": samples.len(),
        "p50_ms": q(0.50),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "max_ms": round3(samples[samples.len() - 1] as f64),
    })
}

/// Rounds to 3 decimals (for readable JSON).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantiles() {
        let mut v: Vec<f32> = (1..=100).map(|x| x as f32).collect();
        let s = super::summary(&mut v);
        assert_eq!(s["p50_ms"], 51.0);
        assert_eq!(s["p99_ms"], 99.0);
        assert_eq!(s["max_ms"], 100.0);
        assert_eq!(super::summary(&mut [])["n"], 0);
    }
}
