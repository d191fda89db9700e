//! The fill server's Prometheus metrics: requests by route and status
//! class, steering outcomes, and the size and health of the fleet view.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Steer,
    Play,
    Appliance,
    Admin,
    License,
    Other,
}

const ROUTES: [(Route, &str); 6] = [
    (Route::Steer, "steer"),
    (Route::Play, "play"),
    (Route::Appliance, "appliance"),
    (Route::Admin, "admin"),
    (Route::License, "license"),
    (Route::Other, "other"),
];
const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// What OS update bytes went out as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsSent {
    Bundle,
    Index,
    Chunk,
}

const OS_SENT: [(OsSent, &str); 3] = [
    (OsSent::Bundle, "bundle"),
    (OsSent::Index, "index"),
    (OsSent::Chunk, "chunk"),
];

#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; 4]; 6],
    os_bytes: [AtomicU64; 3],
    steered_to_appliance: AtomicU64,
    steered_to_origin: AtomicU64,
}

impl Metrics {
    pub fn request(&self, route: Route, status: u16) {
        let r = ROUTES.iter().position(|(x, _)| *x == route).unwrap_or(4);
        let c = usize::from(status / 100).saturating_sub(2).min(3);
        self.requests[r][c].fetch_add(1, Relaxed);
    }

    /// OS update bytes sent to a box: whole bundles (or their resumed
    /// tails), chunk indexes, chunks.
    pub fn os_sent(&self, what: OsSent, bytes: u64) {
        let i = OS_SENT.iter().position(|(x, _)| *x == what).unwrap_or(0);
        self.os_bytes[i].fetch_add(bytes, Relaxed);
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

    /// The page: these counters, the view's gauges, and `app`'s replica
    /// state (jobs lock, heartbeat batches).
    pub fn render(&self, app: &crate::app::App, now: u64) -> String {
        let view = &app.view();
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
        let name = "nearcast_fill_os_bytes_total";
        page.family(name, Kind::Counter, "OS update bytes sent to boxes, by what they were.");
        for (i, (_, what)) in OS_SENT.iter().enumerate() {
            page.sample(name, &[("what", what)], self.os_bytes[i].load(Relaxed));
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
        let batches = [
            (
                "nearcast_fill_heartbeat_batches_total",
                "Heartbeat batches written (one transaction each).",
                app.beats.batches.load(Relaxed),
            ),
            (
                "nearcast_fill_heartbeats_written_total",
                "Heartbeats written, in those batches.",
                app.beats.written.load(Relaxed),
            ),
        ];
        for (name, help, v) in batches {
            page.single(name, Kind::Counter, help, v);
        }
        page.single(
            "nearcast_fill_jobs_leader",
            Kind::Gauge,
            "1 while this replica holds the jobs' lock (runs retention).",
            u64::from(app.leading.load(Relaxed)),
        );
        page.single(
            "nearcast_fill_connections_refused_total",
            Kind::Counter,
            "Connections closed at accept because a door (API or live) was full.",
            crate::server::REFUSED.load(Relaxed),
        );
        misses(&mut page, app);
        page.finish()
    }
}

/// This replica's misses by reason, the origin bytes it attributed to
/// them, and what those cost at the default price.
fn misses(page: &mut nearcast_common::prometheus::Exposition, app: &crate::app::App) {
    use nearcast_common::prometheus::Kind;
    let totals = app.misses.totals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    type Series<'a> = (&'a str, &'a str, fn(&(u64, u64)) -> u64);
    let series: [Series; 2] = [
        (
            "nearcast_fill_misses_total",
            "Steering answers that put the origin first, by reason.",
            |t| t.0,
        ),
        (
            "nearcast_fill_origin_egress_bytes_total",
            "Origin bytes to viewers, by the reason they were sent there.",
            |t| t.1,
        ),
    ];
    for (name, help, value) in series {
        page.family(name, Kind::Counter, help);
        for reason in crate::misses::Reason::ALL {
            let v = totals.get(&reason).map_or(0, value);
            page.sample(name, &[("reason", reason.name())], v);
        }
    }
    let bytes: u64 = totals.values().map(|t| t.1).sum();
    page.single(
        "nearcast_fill_origin_egress_cost_total",
        Kind::Counter,
        "Those origin bytes at the default price per GB ([costs] origin_per_gb).",
        bytes as f64 / 1e9 * app.config.costs.origin_per_gb,
    );
}
