//! Metrics of the questions and predictions (`sentinel_ai_*`, docs/ai.md).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// Metrics of the questions and predictions (docs/ai.md, "Metrics").
pub struct QueryMetrics {
    /// Questions by result (`answered`, `unresolved`, `not_understood`).
    pub queries: IntCounterVec,
    pub query_seconds: Histogram,
    /// Suggestions shown (at or above the confidence threshold).
    pub suggestions: IntCounter,
    pub prediction_seconds: Histogram,
}

impl QueryMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let secs = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ];
        let queries = IntCounterVec::new(
            Opts::new(
                "sentinel_ai_queries_total",
                "questions in plain language by result (answered, unresolved, not_understood)",
            ),
            &["result"],
        )?;
        let query_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_ai_query_seconds",
                "time to parse, run and log one question",
            )
            .buckets(secs.clone()),
        )?;
        let suggestions = IntCounter::new(
            "sentinel_ai_prediction_suggestions_total",
            "predictive-access suggestions shown (at or above the confidence threshold)",
        )?;
        let prediction_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "sentinel_ai_prediction_seconds",
                "time to compute one user's predictive-access suggestions",
            )
            .buckets(secs),
        )?;
        registry.register(Box::new(queries.clone()))?;
        registry.register(Box::new(query_seconds.clone()))?;
        registry.register(Box::new(suggestions.clone()))?;
        registry.register(Box::new(prediction_seconds.clone()))?;
        for r in ["answered", "unresolved", "not_understood"] {
            queries.with_label_values(&[r]);
        }
        Ok(QueryMetrics {
            queries,
            query_seconds,
            suggestions,
            prediction_seconds,
        })
    }
}
