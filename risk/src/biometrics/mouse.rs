//! Mouse dynamics: cuts a session's mouse events into actions (move,
//! point-click, drag-drop) as they stream in, and describes each finished
//! action by a fixed vector of features (velocity, acceleration, jerk,
//! curvature, angles, click and drag durations, pauses, straightness).
//!
//! The segmentation follows Antal and Egyed (2019, "Intrusion detection using
//! mouse dynamics", IET Biometrics): an action ends at a button release or at
//! a pause, and a drag-drop is split from the move that led to it. A
//! [`MouseTracker`] keeps only the action in progress, at most
//! [`MAX_POINTS`] points, so a batch may end in the middle of an action and
//! the next batch continues it.

use super::batch::{Button, MouseEvent, MouseState};
use serde::{Deserialize, Serialize};

/// Features per action.
pub const ACTION_FEATURES: usize = 44;
/// One action's features (serialized as a sequence of numbers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionFeatures(pub [f32; ACTION_FEATURES]);

impl Default for ActionFeatures {
    fn default() -> Self {
        ActionFeatures([0.0; ACTION_FEATURES])
    }
}

impl Serialize for ActionFeatures {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for ActionFeatures {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<f32>::deserialize(d)?;
        let arr: [f32; ACTION_FEATURES] = v.try_into().map_err(|v: Vec<f32>| {
            serde::de::Error::invalid_length(v.len(), &"the number of action features")
        })?;
        if arr.iter().any(|x| !x.is_finite()) {
            return Err(serde::de::Error::custom("a feature is not a finite number"));
        }
        Ok(ActionFeatures(arr))
    }
}

/// Names of the features, in vector order (for docs and debugging).
pub const FEATURE_NAMES: [&str; ACTION_FEATURES] = [
    "kind_move",
    "kind_point_click",
    "kind_drag_drop",
    "log_duration_ms",
    "log_length_px",
    "log_end_to_end_px",
    "straightness",
    "log_points",
    "direction_cos",
    "direction_sin",
    "velocity_mean",
    "velocity_sd",
    "velocity_max",
    "vx_abs_mean",
    "vy_abs_mean",
    "acceleration_mean",
    "acceleration_sd",
    "acceleration_abs_max",
    "jerk_abs_mean",
    "jerk_sd",
    "angular_velocity_abs_mean",
    "angular_velocity_sd",
    "curvature_abs_mean",
    "curvature_sd",
    "turning_total",
    "sharp_turns",
    "log_largest_deviation_px",
    "time_to_max_velocity",
    "log_acceleration_phase_ms",
    "pauses",
    "pause_fraction",
    "log_click_ms",
    "log_pause_before_press_ms",
    "velocity_end",
    "log_sampling_ms",
    "right_button",
    "velocity_median",
    "log_velocity_first_ms",
    "start_x",
    "start_y",
    "end_x",
    "end_y",
    "log_width_px",
    "log_height_px",
];

/// Longest action kept in progress; a longer one is closed as a move.
pub const MAX_POINTS: usize = 512;
/// A gap this long (ms) between two moves ends a move action (the default
/// of `BiometricsConfig::action_pause_ms`).
pub const ACTION_PAUSE_MS: f64 = 1_500.0;
/// A move that has gone on this long (ms) without a pause or a click is
/// closed as an action, so that steady mouse use finishes actions (and so
/// reaches a first score) in bounded time.
pub const MAX_MOVE_MS: f64 = 10_000.0;
/// A gap this long (ms) inside an action counts as a pause.
pub const INNER_PAUSE_MS: f64 = 100.0;
/// Shortest move action (distinct points) that is described.
pub const MIN_MOVE_POINTS: usize = 4;

/// The three kinds of action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionKind {
    Move,
    PointClick,
    DragDrop,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    t: f64,
    x: f32,
    y: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Press {
    t: f64,
    /// Index in `points` of the press point.
    at: usize,
    right: bool,
    /// Time of the last move before the press.
    pause_before: f64,
}

/// The action in progress of one session's mouse stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MouseTracker {
    points: Vec<Point>,
    press: Option<Press>,
    dragged: bool,
}

impl MouseTracker {
    /// Points held for the action in progress (bounded by [`MAX_POINTS`]).
    pub fn pending_points(&self) -> usize {
        self.points.len()
    }

    /// Feeds events (validated, in time order) and appends the features of
    /// every action they finish to `out`.
    pub fn absorb(&mut self, events: &[MouseEvent], out: &mut Vec<ActionFeatures>) {
        self.absorb_with(events, ACTION_PAUSE_MS, out);
    }

    /// [`MouseTracker::absorb`] with another action-ending pause (ms).
    pub fn absorb_with(
        &mut self,
        events: &[MouseEvent],
        pause_ms: f64,
        out: &mut Vec<ActionFeatures>,
    ) {
        for e in events {
            self.event(e, pause_ms, out);
        }
    }

    fn event(&mut self, e: &MouseEvent, pause_ms: f64, out: &mut Vec<ActionFeatures>) {
        let p = Point {
            t: e.t,
            x: e.x as f32,
            y: e.y as f32,
        };
        if e.button == Button::Scroll {
            if self.press.is_none() {
                self.close_move(out);
            }
            return;
        }
        match e.state {
            MouseState::Move | MouseState::Drag => {
                let gap = self.points.last().map_or(0.0, |l| p.t - l.t);
                if self.press.is_none() && gap > pause_ms {
                    self.close_move(out);
                }
                if self.press.is_some() {
                    self.dragged = true;
                }
                self.push(p);
                let long = self
                    .points
                    .first()
                    .is_some_and(|f| p.t - f.t >= MAX_MOVE_MS);
                if self.points.len() >= MAX_POINTS {
                    if self.press.is_some() {
                        // A drag this long is not a gesture: drop it.
                        self.reset();
                    } else {
                        self.close_move(out);
                    }
                } else if long && self.press.is_none() {
                    self.close_move(out);
                }
            }
            MouseState::Pressed => {
                if self.press.is_some() {
                    return;
                }
                let last_t = self.points.last().map(|l| l.t);
                if last_t.is_some_and(|l| p.t - l > pause_ms) {
                    self.close_move(out);
                }
                let pause_before = last_t.map_or(0.0, |l| (p.t - l).max(0.0));
                self.push(p);
                self.press = Some(Press {
                    t: p.t,
                    at: self.points.len() - 1,
                    right: e.button == Button::Right,
                    pause_before,
                });
                self.dragged = false;
            }
            MouseState::Released => {
                let Some(press) = self.press.take() else {
                    return;
                };
                self.push(p);
                let click_ms = (p.t - press.t).max(0.0);
                if self.dragged {
                    let approach = &self.points[..press.at.min(self.points.len())];
                    if approach.len() >= MIN_MOVE_POINTS {
                        out.push(describe(approach, ActionKind::Move, None));
                    }
                    let drag = &self.points[press.at.min(self.points.len())..];
                    if drag.len() >= 3 {
                        out.push(describe(
                            drag,
                            ActionKind::DragDrop,
                            Some((click_ms, &press)),
                        ));
                    }
                } else if self.points.len() >= 2 {
                    out.push(describe(
                        &self.points,
                        ActionKind::PointClick,
                        Some((click_ms, &press)),
                    ));
                }
                self.reset();
            }
            // INVARIANT: validation pairs `up`/`down` with `scroll`, handled above.
            MouseState::Up | MouseState::Down => {}
        }
    }

    /// Appends a point, merging it into the last one when the clock did not move.
    fn push(&mut self, p: Point) {
        match self.points.last_mut() {
            Some(l) if p.t - l.t < 1e-6 => {
                l.x = p.x;
                l.y = p.y;
            }
            _ => self.points.push(p),
        }
    }

    fn close_move(&mut self, out: &mut Vec<ActionFeatures>) {
        if self.press.is_none() && distinct(&self.points) >= MIN_MOVE_POINTS {
            out.push(describe(&self.points, ActionKind::Move, None));
        }
        self.reset();
    }

    fn reset(&mut self) {
        self.points.clear();
        self.press = None;
        self.dragged = false;
    }
}

fn distinct(points: &[Point]) -> usize {
    1 + points
        .windows(2)
        .filter(|w| w[0].x != w[1].x || w[0].y != w[1].y)
        .count()
        .min(points.len().saturating_sub(1))
}

/// Running mean / standard deviation / maximum.
#[derive(Default)]
struct Stat {
    n: f64,
    sum: f64,
    sq: f64,
    max: f64,
}

impl Stat {
    fn add(&mut self, v: f64) {
        if v.is_finite() {
            self.n += 1.0;
            self.sum += v;
            self.sq += v * v;
            self.max = self.max.max(v);
        }
    }
    fn mean(&self) -> f64 {
        if self.n > 0.0 {
            self.sum / self.n
        } else {
            0.0
        }
    }
    fn sd(&self) -> f64 {
        if self.n > 1.0 {
            let m = self.mean();
            (self.sq / self.n - m * m).max(0.0).sqrt()
        } else {
            0.0
        }
    }
}

fn wrap(a: f64) -> f64 {
    let tau = std::f64::consts::TAU;
    let mut a = a % tau;
    if a > std::f64::consts::PI {
        a -= tau;
    } else if a < -std::f64::consts::PI {
        a += tau;
    }
    a
}

/// Describes one action. `points` has at least two entries with increasing `t`.
fn describe(points: &[Point], kind: ActionKind, click: Option<(f64, &Press)>) -> ActionFeatures {
    let mut f = ActionFeatures::default();
    let n = points.len();
    let (first, last) = (points[0], points[n - 1]);
    let duration = (last.t - first.t).max(0.0);

    let mut length = 0.0;
    let mut vel = Stat::default();
    let mut vx = Stat::default();
    let mut vy = Stat::default();
    let mut acc = Stat::default();
    let mut acc_abs_max = 0.0f64;
    let mut jerk = Stat::default();
    let mut omega = Stat::default();
    let mut curv = Stat::default();
    let mut turning = 0.0;
    let mut sharp = 0.0;
    let mut pauses = 0.0;
    let mut pause_time = 0.0;
    let mut speeds: Vec<f64> = Vec::with_capacity(n);
    let (mut prev_v, mut prev_a, mut prev_theta): (Option<f64>, Option<f64>, Option<f64>) =
        (None, None, None);
    let mut t_max_v = 0.0;
    let mut max_v = -1.0;
    let mut accel_phase = None;

    for w in points.windows(2) {
        let dt = (w[1].t - w[0].t).max(1e-3);
        let dx = f64::from(w[1].x - w[0].x);
        let dy = f64::from(w[1].y - w[0].y);
        let ds = dx.hypot(dy);
        length += ds;
        if dt >= INNER_PAUSE_MS {
            pauses += 1.0;
            pause_time += dt;
        }
        let v = ds / dt;
        speeds.push(v);
        vel.add(v);
        vx.add((dx / dt).abs());
        vy.add((dy / dt).abs());
        if v > max_v {
            max_v = v;
            t_max_v = w[1].t - first.t;
        }
        if let Some(pv) = prev_v {
            let a = (v - pv) / dt;
            acc.add(a);
            acc_abs_max = acc_abs_max.max(a.abs());
            if accel_phase.is_none() && a <= 0.0 {
                accel_phase = Some(w[0].t - first.t);
            }
            if let Some(pa) = prev_a {
                jerk.add(((a - pa) / dt).abs());
            }
            prev_a = Some(a);
        }
        prev_v = Some(v);
        if ds > 0.0 {
            let theta = dy.atan2(dx);
            if let Some(pt) = prev_theta {
                let d = wrap(theta - pt);
                omega.add((d / dt).abs());
                curv.add((d / ds).abs().min(10.0));
                turning += d.abs();
                if d.abs() > std::f64::consts::FRAC_PI_2 {
                    sharp += 1.0;
                }
            }
            prev_theta = Some(theta);
        }
    }

    let ex = f64::from(last.x - first.x);
    let ey = f64::from(last.y - first.y);
    let e2e = ex.hypot(ey);
    // Largest distance of a point from the straight line first → last.
    let mut deviation = 0.0f64;
    if e2e > 0.0 {
        for p in points {
            let d = (ex * f64::from(p.y - first.y) - ey * f64::from(p.x - first.x)).abs() / e2e;
            deviation = deviation.max(d);
        }
    }
    let (mut min_x, mut max_x, mut min_y, mut max_y) = (first.x, first.x, first.y, first.y);
    for p in points {
        min_x = min_x.min(p.x);
        max_x = max_x.max(p.x);
        min_y = min_y.min(p.y);
        max_y = max_y.max(p.y);
    }
    speeds.sort_by(|a, b| a.total_cmp(b));
    let median_v = speeds.get(speeds.len() / 2).copied().unwrap_or(0.0);

    let kind_at = match kind {
        ActionKind::Move => 0,
        ActionKind::PointClick => 1,
        ActionKind::DragDrop => 2,
    };
    let ln = |v: f64| (v.max(0.0)).ln_1p();
    let values: [f64; ACTION_FEATURES] = [
        f64::from(u8::from(kind_at == 0)),
        f64::from(u8::from(kind_at == 1)),
        f64::from(u8::from(kind_at == 2)),
        ln(duration),
        ln(length),
        ln(e2e),
        if length > 0.0 {
            (e2e / length).min(1.0)
        } else {
            1.0
        },
        ln(n as f64),
        if e2e > 0.0 { ex / e2e } else { 0.0 },
        if e2e > 0.0 { ey / e2e } else { 0.0 },
        vel.mean(),
        vel.sd(),
        vel.max,
        vx.mean(),
        vy.mean(),
        acc.mean(),
        acc.sd(),
        acc_abs_max,
        jerk.mean(),
        jerk.sd(),
        omega.mean(),
        omega.sd(),
        curv.mean(),
        curv.sd(),
        turning,
        sharp,
        ln(deviation),
        if duration > 0.0 {
            t_max_v / duration
        } else {
            0.0
        },
        ln(accel_phase.unwrap_or(duration)),
        pauses,
        if duration > 0.0 {
            pause_time / duration
        } else {
            0.0
        },
        click.map_or(0.0, |(ms, _)| ln(ms)),
        click.map_or(0.0, |(_, p)| ln(p.pause_before)),
        prev_v.unwrap_or(0.0),
        ln(duration / (n.saturating_sub(1).max(1)) as f64),
        f64::from(u8::from(click.is_some_and(|(_, p)| p.right))),
        median_v,
        ln(speeds
            .first()
            .map_or(0.0, |_| points.get(1).map_or(0.0, |p| p.t - first.t))),
        f64::from(first.x),
        f64::from(first.y),
        f64::from(last.x),
        f64::from(last.y),
        ln(f64::from(max_x - min_x)),
        ln(f64::from(max_y - min_y)),
    ];
    for (slot, v) in f.0.iter_mut().zip(values) {
        // INVARIANT: no NaN or infinity leaves extraction.
        *slot = if v.is_finite() {
            v.clamp(-1e6, 1e6) as f32
        } else {
            0.0
        };
    }
    f
}
