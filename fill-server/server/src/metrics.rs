//! The fill server's Prometheus metrics: requests by route and status
//! class, steering outcomes, and the size and health of the fleet view.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::steer::View;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Steer,
    Play,
    Appliance,
    Admin,
    Other,
}

const ROUTES: [(Route, &str); 5] = [
    (Route::Steer, "steer"),
    (Route::Play, "play"),
    (Route::Appliance, "appliance"),
    (Route::Admin, "admin"),
    (Route::Other, "other"),
];
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; 4]; 5],
    steered_to_appliance: AtomicU64,
    steered_to_origin: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: Route, status: u16) {
        let r = ROUTES.iter().position(|(x, _)| *x == route).unwrap_or(4);
        let c = usize::from(status / 100).saturating_sub(2).min(3);
        self.requests[r][c].fetch_add(1, Relaxed);
    }

    /// A steering answer: did it name an appliance, or only the origin?
    pub fn steered(&self, to_appliance: bool) {
        let c = if to_appliance {
            &self.steered_to_appliance
        } else {
            &self.steered_to_origin
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn render(&self, view: &View, now: u64) -> String {
        use nearcast_common::prometheus::{Exposition, Kind};
        let mut page = Exposition::new();
        let name = "nearcast_fill_requests_total";
        page.family(name, Kind::Counter, "Requests by route and status class.");
        for (r, (_, route)) in ROUTES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                page.sample(
                    name,
                    &[("route", route), ("code", class)],
                    self.requests[r][c].load(Relaxed),
                );
            }
        }
        let name = "nearcast_fill_steered_total";
        page.family(name, Kind::Counter, "Steering answers by their best target.")
            .sample(
                name,
                &[("target", "appliance")],
                self.steered_to_appliance.load(Relaxed),
            )
            .sample(name, &[("target", "origin")], self.steered_to_origin.load(Relaxed));
        let fresh = view
            .boxes
            .iter()
            .filter(|b| b.healthy && now.saturating_sub(b.last_heartbeat) <= view.heartbeat_timeout_secs)
            .count();
        let gauges = [
            ("nearcast_fill_appliances", "Registered appliances.", view.boxes.len()),
            (
                "nearcast_fill_appliances_serving",
                "Appliances healthy with a fresh heartbeat.",
                fresh,
            ),
            (
                "nearcast_fill_prefixes",
                "Client prefixes in the steering table.",
                view.prefixes.len(),
            ),
        ];
        for (name, help, v) in gauges {
            page.single(name, Kind::Gauge, help, v);
        }
        page.single(
            "nearcast_fill_connections_refused_total",
            Kind::Counter,
            "Connections closed at accept because a door (API or live) was full.",
            crate::server::REFUSED.load(Relaxed),
        );
        page.finish()
    }
}
