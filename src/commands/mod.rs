//! The command layer: one file per subcommand, turning parsed arguments ([`cli`]) into
//! calls into the library and an exit code. These are the only modules that import `cli`,
//! so the library below never depends on how a user spelled a flag.

pub mod campaign;
pub mod check;
pub mod cli;
pub mod compare;
pub mod hosts;
pub mod init_target;
pub mod probe;
pub mod report;
pub mod run;
