//! The one integration-test binary: one module per area.

mod history;
mod run;
mod nemesis;
mod report;
mod corpus;
mod checker;
