//! The switchable bugs: each breaks one quorum or check PBFT's safety argument rests on.
//! They exist so faultline can prove it finds such bugs; all are off by default. The
//! simulation tests in `sim::tests` show, for each, a scenario where it breaks agreement;
//! targets/pbftkv/README.md tabulates them.

use std::fmt;
use std::str::FromStr;

/// One bug, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bug {
    /// A request counts as prepared with 2f − 1 matching prepares instead of 2f, so two
    /// conflicting requests can be prepared at one sequence number in one view.
    PrepareQuorum2f,
    /// A request counts as committed-local with 2f matching commits instead of 2f + 1, so
    /// it can execute although no view-change quorum is sure to carry it.
    CommitQuorum2f,
    /// The new primary drops the prepared certificates carried by the view-change
    /// messages: sequence numbers that committed in the old view are reassigned.
    ViewChangeIgnorePrepared,
    /// Prepares and commits are matched to the pre-prepare by view and sequence number
    /// only, not digest: votes for a different request count towards this one.
    NoDigestCheck,
    /// A replica executes and replies once a request is prepared, without waiting for the
    /// commit quorum.
    ExecuteBeforeCommit,
}

impl Bug {
    pub const ALL: [Bug; 5] = [
        Bug::PrepareQuorum2f,
        Bug::CommitQuorum2f,
        Bug::ViewChangeIgnorePrepared,
        Bug::NoDigestCheck,
        Bug::ExecuteBeforeCommit,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Bug::PrepareQuorum2f => "prepare-quorum-2f",
            Bug::CommitQuorum2f => "commit-quorum-2f",
            Bug::ViewChangeIgnorePrepared => "view-change-ignore-prepared",
            Bug::NoDigestCheck => "no-digest-check",
            Bug::ExecuteBeforeCommit => "execute-before-commit",
        }
    }
}

/// `--bug NAME` on the node's command line (the shell's `NodeArgs<Bug>`), by [`Bug::name`].
impl clap::ValueEnum for Bug {
    fn value_variants<'a>() -> &'a [Self] {
        &Bug::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bug::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown bug {s:?}"))
    }
}

/// The set of enabled bugs, as flags the core branches on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bugs {
    pub prepare_quorum_2f: bool,
    pub commit_quorum_2f: bool,
    pub view_change_ignore_prepared: bool,
    pub no_digest_check: bool,
    pub execute_before_commit: bool,
}

impl Bugs {
    /// The flags for a list of bugs.
    pub fn from_list(list: &[Bug]) -> Self {
        let mut b = Bugs::default();
        for bug in list {
            match bug {
                Bug::PrepareQuorum2f => b.prepare_quorum_2f = true,
                Bug::CommitQuorum2f => b.commit_quorum_2f = true,
                Bug::ViewChangeIgnorePrepared => b.view_change_ignore_prepared = true,
                Bug::NoDigestCheck => b.no_digest_check = true,
                Bug::ExecuteBeforeCommit => b.execute_before_commit = true,
            }
        }
        b
    }

    /// The enabled bugs' names, for a start-up log line.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [
            self.prepare_quorum_2f,
            self.commit_quorum_2f,
            self.view_change_ignore_prepared,
            self.no_digest_check,
            self.execute_before_commit,
        ];
        Bug::ALL
            .into_iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(b, _)| b.name())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Bug::ALL {
            assert_eq!(b.name().parse::<Bug>(), Ok(b));
            assert_eq!(Bugs::from_list(&[b]).names(), vec![b.name()]);
        }
        assert!("no-such-bug".parse::<Bug>().is_err());
    }
}
