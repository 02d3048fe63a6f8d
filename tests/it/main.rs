//! The integration tests, in one binary: each test binary links the whole of DataFusion and
//! Ballista (hundreds of megabytes in a debug build), so one binary keeps a cold CI build small
//! on disk and quick to link. One module per area.

mod common;

mod appends;
mod architecture;
mod bad_input;
mod cli;
mod cli_options;
mod cluster;
mod formats;
mod generated;
mod golden;
mod incremental;
mod input;
mod journeys;
mod journeys_reference;
mod reliability;
mod report;
mod robustness;
mod safety;
mod semantics;
mod sql;
mod warehouse;
