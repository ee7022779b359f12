//! raftkv: faultline's reference target (work in progress).
fn main() {}
