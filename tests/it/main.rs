//! The one integration-test binary: one module per area.

mod agreement;
mod append;
mod campaign;
mod ceph_mon;
mod checker;
mod corpus;
mod corrupt;
mod etcd;
mod history;
mod hotstuffkv;
mod lazyfs;
mod modules;
mod nats;
mod nemesis;
mod paxoskv;
mod pbftkv;
mod power;
mod probe;
mod report;
mod run;
mod serve;
mod set;
mod ssh;
mod twin;
mod wire;
mod zookeeper;
