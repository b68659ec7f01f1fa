//! Synthetic mouse users for the biometric tests: each user has a style
//! (speed, curve, sampling, click length) and moves between random targets
//! along minimum-jerk paths, clicking at some of them.

#![allow(dead_code)]

use sentinel_risk::biometrics::batch::{Button, MouseEvent, MouseState};

pub struct Rng(pub u64);
impl Rng {
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Clone, Copy)]
pub struct Style {
    pub speed: f64,
    pub curve: f64,
    pub sample_ms: f64,
    pub click_ms: f64,
    pub pause_ms: f64,
}

pub fn style(user: u64) -> Style {
    let mut r = Rng(user * 7919 + 13);
    Style {
        speed: 0.4 + 1.6 * r.uniform(),
        curve: -0.25 + 0.5 * r.uniform(),
        sample_ms: 8.0 + 16.0 * r.uniform(),
        click_ms: 60.0 + 120.0 * r.uniform(),
        pause_ms: 100.0 + 400.0 * r.uniform(),
    }
}

/// `actions` gestures of a user, starting at time `t0` (ms).
pub fn gestures(s: Style, seed: u64, actions: usize, t0: f64) -> Vec<MouseEvent> {
    let mut r = Rng(seed);
    let mut out = Vec::new();
    let (mut x, mut y, mut t) = (960.0f64, 540.0f64, t0);
    for _ in 0..actions {
        let (tx, ty) = (100.0 + 1700.0 * r.uniform(), 100.0 + 900.0 * r.uniform());
        let dist = (tx - x).hypot(ty - y).max(20.0);
        let dur = dist / (s.speed * (0.15 * r.normal()).exp()) + 80.0;
        let steps = (dur / s.sample_ms).ceil().max(4.0) as usize;
        let (nx, ny) = (-(ty - y) / dist, (tx - x) / dist);
        let bend = s.curve * (1.0 + 0.2 * r.normal()) * dist;
        for i in 1..=steps {
            let u = i as f64 / steps as f64;
            let m = 10.0 * u.powi(3) - 15.0 * u.powi(4) + 6.0 * u.powi(5);
            let off = bend * (std::f64::consts::PI * m).sin();
            let px = x + (tx - x) * m + nx * off + r.normal();
            let py = y + (ty - y) * m + ny * off + r.normal();
            out.push(MouseEvent {
                t: t + u * dur,
                x: px.round() as i32,
                y: py.round() as i32,
                button: Button::None,
                state: MouseState::Move,
            });
        }
        t += dur;
        x = tx;
        y = ty;
        if r.uniform() < 0.5 {
            t += s.pause_ms * (0.2 * r.normal()).exp();
            let press = |state| MouseEvent {
                t: 0.0,
                x: x.round() as i32,
                y: y.round() as i32,
                button: Button::Left,
                state,
            };
            out.push(MouseEvent {
                t,
                ..press(MouseState::Pressed)
            });
            t += s.click_ms * (0.2 * r.normal()).exp();
            out.push(MouseEvent {
                t,
                ..press(MouseState::Released)
            });
        }
        t += 1_600.0 + 500.0 * r.uniform();
    }
    out
}
