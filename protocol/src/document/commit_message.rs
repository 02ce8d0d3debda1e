//! The commit message of a statemesh change: what kind of write made it, and who.
//!
//! The message is part of the Automerge change, so it travels with the change to every node
//! and is kept as long as the change is: the natural place for facts about a change that
//! must survive replication, such as whether it deletes the document (existence is decided
//! from it) and its author (the API token's name). It is data, so it is written and read in
//! this one place:
//!
//! ```text
//! statemesh:<kind>                  written before authorship; author unknown
//! statemesh:<kind>\nauthor:<name>   written since
//! ```
//!
//! Lines after the first that this version does not know are ignored, so a later version
//! may add facts without making these messages unreadable here.

use crate::change_log::ChangeKind;

const AUTHOR_LINE: &str = "author:";

const KINDS: [ChangeKind; 6] = [
    ChangeKind::Put,
    ChangeKind::Patch,
    ChangeKind::Delete,
    ChangeKind::Automerge,
    ChangeKind::Rollback,
    ChangeKind::Restore,
];

/// A parsed commit message, borrowing the author from the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitMessage<'a> {
    pub kind: ChangeKind,
    /// Who made the change; `None` when its origin did not record it.
    pub author: Option<&'a str>,
}

impl<'a> CommitMessage<'a> {
    /// The message of a statemesh change; `None` for any other message (a change made by an
    /// Automerge-native client with a message of its own, say).
    pub fn parse(message: &'a str) -> Option<Self> {
        let mut lines = message.split('\n');
        let first = lines.next()?;
        let kind = KINDS.into_iter().find(|kind| kind.commit_message() == first)?;
        let author = lines.find_map(|line| line.strip_prefix(AUTHOR_LINE)).filter(|a| !a.is_empty());
        Some(Self { kind, author })
    }

    /// The message text. A line break inside the author would end its line early, so it is
    /// written as a space.
    pub fn render(&self) -> String {
        let kind = self.kind.commit_message();
        match self.author {
            None => kind.to_string(),
            Some(author) => {
                let mut text = String::with_capacity(kind.len() + 1 + AUTHOR_LINE.len() + author.len());
                text.push_str(kind);
                text.push('\n');
                text.push_str(AUTHOR_LINE);
                text.extend(author.chars().map(|ch| if ch == '\n' || ch == '\r' { ' ' } else { ch }));
                text
            }
        }
    }
}

/// Whether a change with this message deletes its document.
pub fn is_deletion(message: Option<&str>) -> bool {
    message.and_then(CommitMessage::parse).is_some_and(|m| m.kind == ChangeKind::Delete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_before_authorship_still_read_with_an_unknown_author() {
        let old = CommitMessage::parse("statemesh:delete").expect("ours");
        assert_eq!(old, CommitMessage { kind: ChangeKind::Delete, author: None });
        assert!(is_deletion(Some("statemesh:delete")));
    }

    #[test]
    fn a_message_round_trips_with_its_author() {
        for kind in KINDS {
            let written = CommitMessage { kind, author: Some("ci-bot") };
            assert_eq!(CommitMessage::parse(&written.render()), Some(written));
        }
        assert!(is_deletion(Some(&CommitMessage { kind: ChangeKind::Delete, author: Some("ops") }.render())));
    }

    #[test]
    fn foreign_and_future_messages_are_handled() {
        assert_eq!(CommitMessage::parse("fixed a typo"), None, "an Automerge client's own message");
        assert!(!is_deletion(Some("statemesh:deleted")));
        assert!(!is_deletion(None));
        let future = CommitMessage::parse("statemesh:put\nreason:migration\nauthor:ops").expect("ours");
        assert_eq!(future.author, Some("ops"), "unknown lines are skipped");
        let sneaky = CommitMessage { kind: ChangeKind::Put, author: Some("a\nauthor:b") }.render();
        assert_eq!(CommitMessage::parse(&sneaky).and_then(|m| m.author), Some("a author:b"));
    }
}
