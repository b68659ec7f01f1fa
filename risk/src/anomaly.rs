//! Request anomaly scoring: per-principal features and the model that scores them.
