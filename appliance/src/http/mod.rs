//! HTTP/1.1 on the wire: request parsing, byte ranges and conditionals,
//! and response heads. Pure code over byte slices, no I/O, so it can be
//! unit-tested and fuzzed on its own.

pub mod range;
pub mod request;
pub mod response;

pub use range::{evaluate_range, not_modified, RangeOutcome, Validators};
pub use request::{parse_request, Method, ParseError, Parsed, Request};
pub use response::{Head, Status};
