//! The fill server's API over real sockets: an operator enrolls appliances,
//! they register, heartbeat and report inventory with signed requests, and
//! players are steered. Every kind of refused request is tried. The tests
//! that touch the store run on SQLite and on PostgreSQL.

#[macro_use]
mod support;

mod door;
mod license;
mod live;
mod manifests;
mod os;
mod play;
mod refusals;
mod replicas;
mod reports;
mod rights;
mod rollouts;
mod routes;
mod steering;
mod viewers;
mod wire;
