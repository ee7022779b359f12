//! The switchable bugs: each one is a classic way to break Paxos. They exist so faultline
//! can prove it finds such bugs; all are off by default. targets/paxoskv/README.md names
//! the fault that exposes each, and `sim::tests` shows each one breaking safety.

use clap::ValueEnum;

/// One bug, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Bug {
    /// The promised ballot is not persisted: a restarted acceptor accepts an older ballot.
    ForgetPromise,
    /// A new leader does not adopt the highest-ballot value reported in phase 1.
    IgnoreAccepted,
    /// An acceptor accepts phase-2 messages below its promised ballot.
    NoBallotCheck,
    /// The leader answers reads from local state without confirming it still leads.
    LocalRead,
    /// A slot counts as chosen once one acceptor (the leader itself) accepted it.
    CommitOnFirstAck,
}

/// The set of enabled bugs, as flags the code branches on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    pub forget_promise: bool,
    pub ignore_accepted: bool,
    pub no_ballot_check: bool,
    pub local_read: bool,
    pub commit_on_first_ack: bool,
}

impl Bugs {
    /// The flags for a list of bugs named on the command line.
    pub fn from_list(list: &[Bug]) -> Self {
        let mut b = Bugs::default();
        for bug in list {
            match bug {
                Bug::ForgetPromise => b.forget_promise = true,
                Bug::IgnoreAccepted => b.ignore_accepted = true,
                Bug::NoBallotCheck => b.no_ballot_check = true,
                Bug::LocalRead => b.local_read = true,
                Bug::CommitOnFirstAck => b.commit_on_first_ack = true,
            }
        }
        b
    }

    /// The enabled bugs' names, for a start-up log line.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.forget_promise, "forget-promise"),
            (self.ignore_accepted, "ignore-accepted"),
            (self.no_ballot_check, "no-ballot-check"),
            (self.local_read, "local-read"),
            (self.commit_on_first_ack, "commit-on-first-ack"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_enabled_flags() {
        let b = Bugs::from_list(&[Bug::LocalRead, Bug::ForgetPromise]);
        assert!(b.local_read && b.forget_promise && !b.no_ballot_check);
        assert_eq!(b.names(), vec!["forget-promise", "local-read"]);
        assert!(Bugs::default().names().is_empty());
    }

    #[test]
    fn command_line_names_match_the_flag_names() {
        for name in [
            "forget-promise",
            "ignore-accepted",
            "no-ballot-check",
            "local-read",
            "commit-on-first-ack",
        ] {
            let bug = Bug::from_str(name, false).expect("a bug name");
            assert_eq!(Bugs::from_list(&[bug]).names(), vec![name]);
        }
    }
}
