//! Behavioural biometrics: mouse and keystroke features and per-user scoring.
