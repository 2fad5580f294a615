//! The file names with a blocked extension found in one message: the reply names the first, the
//! recipients' notice (`zimbraMtaBlockedExtensionWarnRecipient`) all of them, as amavis's
//! banned-file notice lists every banned part.

use super::Rejection;

/// Names kept: a message with hundreds of `.exe` members in a zip still gets a short notice.
const MAX_NAMED: usize = 16;

/// The blocked names of one message, in the order found, each once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlockedNames(Vec<String>);

impl BlockedNames {
    pub fn add(&mut self, name: &str) {
        if self.0.len() < MAX_NAMED && !self.0.iter().any(|n| n == name) {
            self.0.push(name.to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The refusal these names make, if there are any.
    pub fn rejection(self) -> Option<Rejection> {
        let mut names = self.0.into_iter();
        let name = names.next()?;
        Some(Rejection::BlockedAttachment {
            name,
            more: names.collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_named_the_rest_listed_once_and_few() {
        assert_eq!(BlockedNames::default().rejection(), None);
        let mut found = BlockedNames::default();
        for i in 0..100 {
            found.add(&format!("{}.exe", i % 20));
        }
        found.add("0.exe");
        let Some(Rejection::BlockedAttachment { name, more }) = found.rejection() else {
            panic!("no rejection");
        };
        assert_eq!(name, "0.exe");
        assert_eq!(more.len(), MAX_NAMED - 1);
        assert_eq!(more[0], "1.exe");
    }
}
